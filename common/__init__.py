"""What every SupportDesk app shares and nothing else: API errors, pagination, throttles and
permissions (``api``), the service errors (``exceptions``), the model base (``models``), the admin
mixins (``admin``), domain events (``events``) and live-update groups and broadcasts
(``realtime``). The bottom layer: it imports no app of the project (see ``.importlinter``)."""
