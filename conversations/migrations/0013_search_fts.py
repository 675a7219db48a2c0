"""The search at scale (issue 15, docs/search.md): PostgreSQL full-text search over the messages'
text, trigram indexes over the customers' names and the digits of their phone numbers.

PostgreSQL only (SQLite keeps the ``icontains`` fallback of ``conversations.selectors``):

- the extensions ``unaccent`` (already there since 0008) and ``pg_trgm``;
- ``sd_unaccent(text)``, an IMMUTABLE wrapper of ``unaccent`` (which is only STABLE: it reads
  its dictionary), and ``sd_digits(text)``, a phone number's digits: index expressions need
  immutable functions;
- the text search configuration ``pt_unaccent``: Portuguese stemming after ``unaccent``;
- ``conversations_message.search_vector``, a stored generated ``tsvector`` column
  (``to_tsvector('pt_unaccent', body)``), kept by PostgreSQL itself on every insert and update;
- ``conversations_customer.search_name`` (``sd_unaccent(lower(name))``) and ``.phone_digits``
  (``sd_digits(phone)``), stored generated columns too;
- GIN indexes: ``msg_search_vector_idx`` (``search_vector``), ``customer_name_trgm_idx``
  (``search_name gin_trgm_ops``), ``customer_phone_trgm_idx`` (``phone_digits gin_trgm_ops``).

The model does not declare these columns and indexes (SQLite could not hold them): they are the
database's, and the selectors reach them through ``conversations.search``.

On a large live table
---------------------
This migration is not atomic: each statement commits on its own, and the indexes are built with
``CREATE INDEX CONCURRENTLY`` (no lock that blocks writes). Adding the generated columns, however,
rewrites ``conversations_message`` (and the smaller ``conversations_customer``) under an ACCESS EXCLUSIVE lock (about 10 s per million
messages on a small box): on a big live desk run it in a quiet hour, or do it by hand first
(docs/search.md, "Migrating a large desk") — every statement here is ``IF NOT EXISTS``, so the
migration then only records itself. An interrupted ``CREATE INDEX CONCURRENTLY`` leaves an
INVALID index: ``DROP INDEX CONCURRENTLY`` it and migrate again.
"""

from typing import Any

from django.contrib.postgres.operations import TrigramExtension, UnaccentExtension
from django.db import migrations

FUNCTIONS = [
    # unaccent() is STABLE; this wrapper names its dictionary, so it does not depend on the
    # search_path, and is declared IMMUTABLE so that indexes may use it.
    """
    CREATE OR REPLACE FUNCTION sd_unaccent(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT public.unaccent('public.unaccent'::regdictionary, $1) $$
    """,
    """
    CREATE OR REPLACE FUNCTION sd_digits(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT regexp_replace($1, '[^0-9]', '', 'g') $$
    """,
    """
    DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = 'pt_unaccent') THEN
        CREATE TEXT SEARCH CONFIGURATION pt_unaccent (COPY = pg_catalog.portuguese);
        ALTER TEXT SEARCH CONFIGURATION pt_unaccent
          ALTER MAPPING FOR hword, hword_part, word WITH public.unaccent, portuguese_stem;
      END IF;
    END $$
    """,
    """
    ALTER TABLE conversations_message ADD COLUMN IF NOT EXISTS search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('pt_unaccent'::regconfig, body)) STORED
    """,
    # Stored, so that reading them costs no function call per row (a plain scan of a small
    # table stays cheap) and the trigram indexes below have plain columns.
    """
    ALTER TABLE conversations_customer ADD COLUMN IF NOT EXISTS search_name text
    GENERATED ALWAYS AS (sd_unaccent(lower(name))) STORED
    """,
    """
    ALTER TABLE conversations_customer ADD COLUMN IF NOT EXISTS phone_digits text
    GENERATED ALWAYS AS (sd_digits(phone)) STORED
    """,
]

INDEXES = [
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS msg_search_vector_idx"
    " ON conversations_message USING gin (search_vector)",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS customer_name_trgm_idx"
    " ON conversations_customer USING gin (search_name gin_trgm_ops)",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS customer_phone_trgm_idx"
    " ON conversations_customer USING gin (phone_digits gin_trgm_ops)",
]

REVERSE = [
    "DROP INDEX CONCURRENTLY IF EXISTS customer_phone_trgm_idx",
    "DROP INDEX CONCURRENTLY IF EXISTS customer_name_trgm_idx",
    "DROP INDEX CONCURRENTLY IF EXISTS msg_search_vector_idx",
    "ALTER TABLE conversations_message DROP COLUMN IF EXISTS search_vector",
    "ALTER TABLE conversations_customer DROP COLUMN IF EXISTS search_name",
    "ALTER TABLE conversations_customer DROP COLUMN IF EXISTS phone_digits",
    "DROP TEXT SEARCH CONFIGURATION IF EXISTS pt_unaccent",
    "DROP FUNCTION IF EXISTS sd_digits(text)",
    "DROP FUNCTION IF EXISTS sd_unaccent(text)",
]


def _run(statements: list[str]) -> Any:
    def run(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [("conversations", "0012_scheduled_messages")]

    operations = [
        UnaccentExtension(),
        TrigramExtension(),
        migrations.RunPython(_run(FUNCTIONS), _run(REVERSE[3:]), elidable=False),
        migrations.RunPython(_run(INDEXES), _run(REVERSE[:3]), elidable=False),
    ]
