"""Talking to other systems: signed outgoing requests and the address rules they follow."""
