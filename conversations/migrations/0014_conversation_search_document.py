"""One search document per conversation (issue 15, docs/search.md): the words of all its messages
in one ``tsvector`` on ``conversations_conversation``, so a search reads one table, in activity
order, and stops at a page.

PostgreSQL only (SQLite keeps the ``icontains`` fallback):

- ``conversations_conversation.search_document`` (``tsvector``, NULL allowed, default ``''`` for
  new rows): the messages' ``search_vector`` (migration 0013) one after the other, three word
  positions apart, so a quoted phrase never runs from one message into the next. NULL means "no
  document": not built yet (a conversation older than this migration, until the backfill reaches
  it) or given up (past :data:`MAX_POSITION` word positions or a quarter of a megabyte); the
  search then reads that conversation's messages (``sd_conversation_messages_match``).
- ``sd_search_document_append`` (a document plus more words; NULL when it would grow past its
  limits) and the ordered aggregate ``sd_search_document_agg`` over messages' vectors;
- triggers on ``conversations_message``: after each INSERT statement (one UPDATE per statement,
  whatever its number of rows: the intake batch, ``bulk_create``, COPY of ``seed_load``) the new
  messages' words are appended to their conversations' documents; after an UPDATE that changes a
  message's ``body`` or conversation, its new words are appended. Words are never removed (an
  edited or deleted message's old words stay): the document may find a conversation by words it
  no longer shows, never miss one.
- GIN index ``conv_search_document_idx`` and the partial ``conv_search_missing_idx`` (the
  conversations without a document), so both arms of the search are index scans.

On a large live table
---------------------
Not atomic, every step commits on its own and none blocks writes for long: the column is added
without rewriting the table (NULL, then a default for new rows only), the triggers are created,
then the backfill fills the documents a thousand conversations per transaction (locking only
those thousand rows, so a message arriving meanwhile waits for the batch and then adds its words
to the document just built), and the indexes are built with ``CREATE INDEX CONCURRENTLY``. About
50 s per million messages on a small box; the search is right during the backfill (a conversation
without its document is searched through its messages, only slower). It can be run by hand in
``psql`` (``FUNCTIONS``, then ``backfill`` repeatedly, then ``INDEXES``); every statement is
``IF NOT EXISTS`` / ``CREATE OR REPLACE`` / ``IS NULL``-guarded, so ``manage.py migrate`` then only
records it. An interrupted ``CREATE INDEX CONCURRENTLY`` leaves an INVALID index: ``DROP INDEX
CONCURRENTLY`` it and migrate again.
"""

from typing import Any

from django.db import migrations, transaction

# tsvector positions stop at 16383: past this, phrases could no longer be told apart.
MAX_POSITION = 16000
MAX_BYTES = 256 * 1024
BATCH = 1000

FUNCTIONS = [
    "ALTER TABLE conversations_conversation ADD COLUMN IF NOT EXISTS search_document tsvector",
    # New conversations start with an empty document; existing rows keep NULL until backfilled.
    "ALTER TABLE conversations_conversation ALTER COLUMN search_document SET DEFAULT ''",
    """
    CREATE OR REPLACE FUNCTION sd_tsvector_max_position(tsvector) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT coalesce(max(u.positions[cardinality(u.positions)]), 0)::integer
          FROM unnest($1) AS u $$
    """,
    # ``document`` followed by ``words``, three positions apart (a lexeme put there and removed:
    # the concatenation shifts the right side past the left's last position); NULL past the
    # limits, and NULL stays NULL.
    f"""
    CREATE OR REPLACE FUNCTION sd_search_document_append(document tsvector, words tsvector)
    RETURNS tsvector LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    AS $$
    DECLARE joined tsvector;
    BEGIN
      IF document IS NULL THEN RETURN NULL; END IF;
      IF words IS NULL OR length(words) = 0 THEN RETURN document; END IF;
      IF pg_column_size(document) + pg_column_size(words) > {MAX_BYTES} THEN RETURN NULL; END IF;
      joined := ts_delete(document || '''sd gap'':3'::tsvector || words, 'sd gap');
      IF sd_tsvector_max_position(joined) > {MAX_POSITION} THEN RETURN NULL; END IF;
      RETURN joined;
    END $$
    """,
    """
    DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'sd_search_document_agg') THEN
        CREATE AGGREGATE sd_search_document_agg(tsvector) (
          SFUNC = sd_search_document_append, STYPE = tsvector, INITCOND = ''
        );
      END IF;
    END $$
    """,
    # The search's arm for a conversation without a document: one of its messages holds the
    # words. PL/pgSQL, so the planner never inlines it into a hash of every matching message.
    # Its COST (what the planner charges per conversation the search condition is checked on)
    # makes the planner count the rows it would read: walking the conversations in activity
    # order when matches are dense, reading the index then sorting when they are rare.
    """
    CREATE OR REPLACE FUNCTION sd_conversation_messages_match(conversation bigint, query tsquery)
    RETURNS boolean LANGUAGE plpgsql STABLE PARALLEL SAFE STRICT COST 1000
    AS $$ BEGIN
      RETURN EXISTS (SELECT 1 FROM conversations_message
                     WHERE conversation_id = conversation AND search_vector @@ query);
    END $$
    """,
    """
    CREATE OR REPLACE FUNCTION sd_conversation_search_insert() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN
      -- In id order, as two intake batches touching the same conversations must lock them.
      PERFORM 1 FROM conversations_conversation
        WHERE id IN (SELECT conversation_id FROM sd_inserted) ORDER BY id FOR NO KEY UPDATE;
      UPDATE conversations_conversation AS c
         SET search_document = sd_search_document_append(c.search_document, added.words)
        FROM (SELECT conversation_id,
                     sd_search_document_agg(search_vector ORDER BY created_at, id) AS words
                FROM sd_inserted WHERE length(search_vector) > 0
               GROUP BY conversation_id) AS added
       WHERE c.id = added.conversation_id AND c.search_document IS NOT NULL;
      RETURN NULL;
    END $$
    """,
    """
    CREATE OR REPLACE FUNCTION sd_conversation_search_update() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN
      UPDATE conversations_conversation
         SET search_document = sd_search_document_append(search_document, NEW.search_vector)
       WHERE id = NEW.conversation_id AND search_document IS NOT NULL;
      RETURN NULL;
    END $$
    """,
    "DROP TRIGGER IF EXISTS sd_conversation_search_insert ON conversations_message",
    """
    CREATE TRIGGER sd_conversation_search_insert AFTER INSERT ON conversations_message
    REFERENCING NEW TABLE AS sd_inserted
    FOR EACH STATEMENT EXECUTE FUNCTION sd_conversation_search_insert()
    """,
    "DROP TRIGGER IF EXISTS sd_conversation_search_update ON conversations_message",
    """
    CREATE TRIGGER sd_conversation_search_update
    AFTER UPDATE OF body, conversation_id ON conversations_message
    FOR EACH ROW WHEN (OLD.body IS DISTINCT FROM NEW.body
                       OR OLD.conversation_id IS DISTINCT FROM NEW.conversation_id)
    EXECUTE FUNCTION sd_conversation_search_update()
    """,
]

# One batch: lock up to BATCH conversations without a document (a message arriving for one of
# them waits, then appends to the document built here), then build their documents from the
# messages committed so far. Repeat until it changes no row.
BACKFILL_LOCK = """
    SELECT array_agg(id) FROM (
      SELECT id FROM conversations_conversation WHERE search_document IS NULL AND id > %s
      ORDER BY id LIMIT %s FOR UPDATE
    ) AS batch
"""
BACKFILL_BUILD = """
    UPDATE conversations_conversation AS c
       SET search_document = coalesce(
             (SELECT sd_search_document_agg(m.search_vector ORDER BY m.created_at, m.id)
                FROM conversations_message AS m
               WHERE m.conversation_id = c.id AND length(m.search_vector) > 0),
             '')
     WHERE c.id = ANY(%s) AND c.search_document IS NULL
"""

INDEXES = [
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS conv_search_document_idx"
    " ON conversations_conversation USING gin (search_document)",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS conv_search_missing_idx"
    " ON conversations_conversation (id) WHERE search_document IS NULL",
    "ANALYZE conversations_conversation",
]

REVERSE = [
    "DROP INDEX CONCURRENTLY IF EXISTS conv_search_missing_idx",
    "DROP INDEX CONCURRENTLY IF EXISTS conv_search_document_idx",
    "DROP TRIGGER IF EXISTS sd_conversation_search_update ON conversations_message",
    "DROP TRIGGER IF EXISTS sd_conversation_search_insert ON conversations_message",
    "DROP FUNCTION IF EXISTS sd_conversation_search_update()",
    "DROP FUNCTION IF EXISTS sd_conversation_search_insert()",
    "DROP FUNCTION IF EXISTS sd_conversation_messages_match(bigint, tsquery)",
    "DROP AGGREGATE IF EXISTS sd_search_document_agg(tsvector)",
    "DROP FUNCTION IF EXISTS sd_search_document_append(tsvector, tsvector)",
    "DROP FUNCTION IF EXISTS sd_tsvector_max_position(tsvector)",
    "ALTER TABLE conversations_conversation DROP COLUMN IF EXISTS search_document",
]


def _run(statements: list[str]) -> Any:
    def run(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement)

    return run


def backfill(apps: Any, schema_editor: Any) -> None:
    """Every conversation without a document gets one, BATCH per transaction."""
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    last = 0
    while True:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(BACKFILL_LOCK, [last, BATCH])
            ids = cursor.fetchone()[0]
            if ids:
                cursor.execute(BACKFILL_BUILD, [ids])
        if not ids:
            return
        last = max(ids)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [("conversations", "0013_search_fts")]

    operations = [
        migrations.RunPython(_run(FUNCTIONS), _run(REVERSE[2:]), elidable=False),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=False),
        migrations.RunPython(_run(INDEXES), _run(REVERSE[:2]), elidable=False),
    ]
