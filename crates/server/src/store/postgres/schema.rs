//! The PostgreSQL engine's schema and the functions that change it, created at start if
//! missing, and the check that the database holds this lottery.
//!
//! Tables:
//! - `lottery`: one row, the number of agencies the lottery was started for.
//! - `agencies`: one row per agency (1 to that number): its last committed sequence and that
//!   batch's digest, its counts and whether it is done. Its row lock serializes everything
//!   that changes the agency, whichever central (or connection) does it.
//! - `batches`: one row per committed batch, keyed by (agency, sequence): its bet count,
//!   the place of its first bet in the agency's upload, its content digest, its winner
//!   positions (so a replay of the same bets gets the original answer, and other bets under
//!   the same sequence are a conflict) and its winning bets, one array per field. The key is
//!   what makes a batch commit at most once.
//! - `winners`: a view, the winning bets one per row, the rows of the winners file. A batch's
//!   winners live in its own row: committing a batch writes one row, whatever its winners.
//!
//! A group of batches commits through `lottery_stage_group` (set-based: one statement for every
//! batch of the group), a single batch through `lottery_stage`, a group of finishes through
//! `lottery_finish_group`: each is one statement, so one round trip and one transaction (the
//! statement's own), whose outcomes come back as rows rather than exceptions (a refusal
//! changes nothing either way, and never aborts the batches beside it).

use postgres::Client;

/// Key of the transaction-level advisory lock taken while the schema is created: centrals
/// starting at once on an empty database would otherwise race on `CREATE` (duplicate key in
/// the catalog) and on `CREATE OR REPLACE FUNCTION` ("tuple concurrently updated").
const SCHEMA_LOCK: i64 = 0x004c_6f74_6572_6961; // "Loteria" in ASCII

/// Tables and functions, idempotent: every statement creates only what is missing, or
/// replaces a function by the same text.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS lottery (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    agencies integer NOT NULL CHECK (agencies >= 0),
    started timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS agencies (
    agency integer PRIMARY KEY CHECK (agency >= 1),
    last_sequence bigint NOT NULL DEFAULT 0,
    bets bigint NOT NULL DEFAULT 0,
    winners bigint NOT NULL DEFAULT 0,
    done boolean NOT NULL DEFAULT false,
    -- The digest of batch last_sequence (zeros before the first): the next batch commits only
    -- if it was staged after that one.
    last_digest bytea NOT NULL DEFAULT '\x00000000000000000000000000000000' CHECK (length(last_digest) = 16)
);

CREATE TABLE IF NOT EXISTS batches (
    agency integer NOT NULL REFERENCES agencies,
    sequence bigint NOT NULL CHECK (sequence >= 1),
    bets bigint NOT NULL,
    first_bet bigint NOT NULL,
    digest bytea NOT NULL CHECK (length(digest) = 16),
    winners integer[] NOT NULL,
    -- The winning bets' fields, in the order of winners (position i of the batch won with
    -- the bet first_names[k], last_names[k], documents[k], birthdates[k] where winners[k] = i).
    first_names text[] NOT NULL,
    last_names text[] NOT NULL,
    documents text[] NOT NULL,
    birthdates date[] NOT NULL,
    PRIMARY KEY (agency, sequence),
    CHECK (cardinality(first_names) = cardinality(winners)
        AND cardinality(last_names) = cardinality(winners)
        AND cardinality(documents) = cardinality(winners)
        AND cardinality(birthdates) = cardinality(winners))
);

-- The winning bets, one row each: what the winners file holds.
CREATE OR REPLACE VIEW winners AS
    SELECT b.agency, b.sequence, w.position, w.first_name, w.last_name, w.document, w.birthdate
    FROM batches b,
        unnest(b.winners, b.first_names, b.last_names, b.documents, b.birthdates)
            AS w(position, first_name, last_name, document, birthdate);

-- Commits batch p_sequence of p_agency, staged after the batch whose digest is p_after, or
-- says why not. o_outcome:
--   fresh            committed now; o_winners are p_winners, o_number the agency's bets now
--   replay           committed before (by any connection or central) with the same bets
--                    (p_digest); o_winners the original
--   conflict         committed before with other bets (another digest): never merged
--   diverged         the next batch, but the agency's last committed batch is not the one it
--                    was staged after (p_after): another upload holds the sequence before it
--   not_the_batch    committed before with o_number bets, not p_bets
--   finished         the agency is done
--   out_of_sequence  o_number is the sequence expected
--   unknown          no such agency
CREATE OR REPLACE FUNCTION lottery_stage(
    p_agency integer, p_sequence bigint, p_bets bigint, p_digest bytea, p_after bytea,
    p_winners integer[], p_first_names text[], p_last_names text[], p_documents text[],
    p_birthdates text[],
    OUT o_outcome text, OUT o_number bigint, OUT o_winners integer[])
LANGUAGE plpgsql AS $$
DECLARE
    a agencies%ROWTYPE;
    b batches%ROWTYPE;
BEGIN
    -- Every change to this agency, from any central, waits here for the previous one.
    SELECT * INTO a FROM agencies WHERE agency = p_agency FOR UPDATE;
    IF NOT FOUND THEN
        o_outcome := 'unknown';
        RETURN;
    END IF;
    IF p_sequence >= 1 AND p_sequence <= a.last_sequence THEN
        SELECT * INTO STRICT b FROM batches WHERE agency = p_agency AND sequence = p_sequence;
    ELSIF a.done THEN
        o_outcome := 'finished';
        RETURN;
    ELSIF p_sequence <> a.last_sequence + 1 THEN
        o_outcome := 'out_of_sequence';
        o_number := a.last_sequence + 1;
        RETURN;
    ELSIF p_after <> a.last_digest THEN
        o_outcome := 'diverged';
        RETURN;
    ELSE
        -- The key decides, not the check above: a row already there is the original.
        INSERT INTO batches VALUES (p_agency, p_sequence, p_bets, a.bets, p_digest, p_winners,
                p_first_names, p_last_names, p_documents, p_birthdates::date[])
            ON CONFLICT DO NOTHING;
        IF FOUND THEN
            UPDATE agencies
                SET last_sequence = p_sequence,
                    bets = agencies.bets + p_bets,
                    winners = agencies.winners + cardinality(p_winners),
                    last_digest = p_digest
                WHERE agency = p_agency;
            o_outcome := 'fresh';
            o_number := a.bets + p_bets;
            o_winners := p_winners;
            RETURN;
        END IF;
        SELECT * INTO STRICT b FROM batches WHERE agency = p_agency AND sequence = p_sequence;
    END IF;
    IF b.bets <> p_bets THEN
        o_outcome := 'not_the_batch';
        o_number := b.bets;
    ELSIF b.digest <> p_digest THEN
        o_outcome := 'conflict';
    ELSE
        o_outcome := 'replay';
        o_winners := b.winners;
    END IF;
END
$$;

-- A batch's winners as a group carries them: the winning positions and, in the same order,
-- the winning bets' fields (birthdates as text, cast to date when stored).
DO $$
BEGIN
    IF to_regtype('batch_winners') IS NULL THEN
        CREATE TYPE batch_winners AS (positions integer[], first_names text[], last_names text[],
                                      documents text[], birthdates text[]);
    END IF;
END
$$;

-- Commits a group of batches in one transaction: batch i is (p_agencies[i], p_sequences[i],
-- p_bets[i], p_digests[i], staged after p_afters[i]) with the winners p_winners[i]. Each
-- batch gets its own outcome row (o_index = i), decided by the same rules as lottery_stage:
-- a batch that breaks one is refused alone, and changes nothing but what follows it in its
-- own agency's chain.
--
-- Set-based: the group's agency rows are locked first, in ascending order (callers sort the
-- batches by agency, then sequence), so groups of several connections or centrals never
-- deadlock; then one statement decides every batch against its locked agency row and, for a
-- replay, its committed batch, and writes all fresh batches and all their agencies' counts at
-- once. An agency may have several batches in the group (a connection stages the batches its
-- agency pipelines before their group commits): past its last committed sequence, the c-th
-- (by sequence) is fresh when it is the c-th next batch, staged after the one before it, and
-- every one before it is fresh too; the first that is not is refused (out of sequence, or
-- diverged: staged after another batch than the committed one), and every later one is out
-- of sequence. The lock held makes the decision exact: an agency's last_sequence, its
-- last_digest and its batches change together, under that lock. The key on (agency,
-- sequence) stays the last word: were a fresh batch there after all, the statement fails
-- whole and the engine sends the batches again one by one. The same batch twice in a group
-- (two connections of one agency at once, rare) goes through lottery_stage batch by batch,
-- each seeing the one before.
--
-- A database made by an earlier version also holds that version's lottery_stage_group (the
-- winners as flat arrays, one function of the same rules over the same tables): it is left
-- in place, so centrals of both versions can share the database while they are replaced one
-- at a time.
CREATE OR REPLACE FUNCTION lottery_stage_group(
    p_agencies integer[], p_sequences bigint[], p_bets bigint[], p_digests bytea[], p_afters bytea[],
    p_winners batch_winners[])
RETURNS TABLE (o_index integer, o_outcome text, o_number bigint, o_winners integer[])
-- Planned once per connection: a custom plan per call (PostgreSQL's choice for statements
-- whose parameters are arrays) cost about as much as running the statement. Every row it
-- reads is found by its key, one probe per batch, whatever the statistics say of the tables
-- when the plan is made (a sequential scan of agencies per batch grows with the agencies and
-- with their dead row versions).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    PERFORM 1 FROM agencies WHERE agency = ANY (p_agencies) ORDER BY agency FOR UPDATE;
    IF coalesce(cardinality(p_agencies), 0)
        = (SELECT count(*) FROM (SELECT DISTINCT * FROM unnest(p_agencies, p_sequences)) AS pairs) THEN
        RETURN QUERY
        WITH input AS (
            -- (unnest spreads each batch_winners into its five columns)
            SELECT u.i::integer AS i, u.agency, u.sequence, u.bets, u.digest, u.after,
                   coalesce(u.positions, '{}') AS positions, u.first_names, u.last_names,
                   u.documents, u.birthdates
            FROM unnest(p_agencies, p_sequences, p_bets, p_digests, p_afters, p_winners)
                WITH ORDINALITY AS u(agency, sequence, bets, digest, after, positions, first_names,
                                     last_names, documents, birthdates, i)
        ), looked AS (
            SELECT n.*, a.agency IS NOT NULL AS known, a.bets AS held, a.last_sequence,
                   a.last_digest, a.done, n.sequence >= 1 AND n.sequence <= a.last_sequence AS old,
                   b.bets AS committed, b.digest AS committed_digest, b.winners AS committed_winners
            FROM input n
                -- Each lookup is one probe of a primary key (OFFSET 0 keeps it a probe per
                -- batch, never a join over all committed batches); the committed batch is
                -- looked up only for a replay.
                LEFT JOIN LATERAL (SELECT * FROM agencies x WHERE x.agency = n.agency OFFSET 0) a ON true
                LEFT JOIN LATERAL (SELECT y.bets, y.digest, y.winners FROM batches y
                                   WHERE n.sequence <= a.last_sequence
                                     AND y.agency = n.agency AND y.sequence = n.sequence OFFSET 0) b ON true
        ), ranked AS (
            -- c: the batch's rank among its agency's batches of the group past the committed
            -- ones; below: the digest of the one ranked before it; earlier: their bets.
            SELECT l.*, row_number() OVER w AS c, lag(l.digest) OVER w AS below,
                   coalesce(sum(l.bets) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)::bigint AS earlier
            FROM looked l
            WINDOW w AS (PARTITION BY l.agency, l.old ORDER BY l.sequence)
        ), checked AS (
            -- broken: the rank of the agency's first batch that cannot be the next one.
            SELECT q.*, min(q.c) FILTER (WHERE q.sequence <> q.last_sequence + q.c
                                            OR q.after <> coalesce(q.below, q.last_digest))
                            OVER (PARTITION BY q.agency, q.old) AS broken
            FROM ranked q
        ), decided AS (
            SELECT k.*, k.held + k.earlier AS before,
                CASE WHEN NOT k.known THEN 'unknown'
                     WHEN k.old THEN
                         CASE WHEN k.committed <> k.bets THEN 'not_the_batch'
                              WHEN k.committed_digest <> k.digest THEN 'conflict'
                              ELSE 'replay' END
                     WHEN k.done THEN 'finished'
                     WHEN k.broken IS NULL OR k.c < k.broken THEN 'fresh'
                     WHEN k.c = k.broken AND k.sequence = k.last_sequence + k.c THEN 'diverged'
                     ELSE 'out_of_sequence' END AS outcome
            FROM checked k
        ), fresh_batches AS (
            INSERT INTO batches
                SELECT d.agency, d.sequence, d.bets, d.before, d.digest, d.positions,
                       coalesce(d.first_names, '{}'), coalesce(d.last_names, '{}'),
                       coalesce(d.documents, '{}'), coalesce(d.birthdates, '{}')::date[]
                FROM decided d
                WHERE d.outcome = 'fresh'
        ), counted AS (
            UPDATE agencies a
                SET last_sequence = f.last_sequence, bets = a.bets + f.bets,
                    winners = a.winners + f.winners, last_digest = f.last_digest
                FROM (SELECT d.agency, max(d.sequence) AS last_sequence, sum(d.bets)::bigint AS bets,
                             sum(cardinality(d.positions))::bigint AS winners,
                             (array_agg(d.digest ORDER BY d.sequence DESC))[1] AS last_digest
                      FROM decided d WHERE d.outcome = 'fresh' GROUP BY d.agency) f
                WHERE a.agency = f.agency
        )
        SELECT d.i, d.outcome,
            CASE d.outcome WHEN 'fresh' THEN d.before + d.bets
                           WHEN 'not_the_batch' THEN d.committed
                           WHEN 'out_of_sequence' THEN d.last_sequence + least(d.c, d.broken) END,
            CASE d.outcome WHEN 'fresh' THEN d.positions
                           WHEN 'replay' THEN d.committed_winners END
        FROM decided d;
        RETURN;
    END IF;
    FOR r IN SELECT u.*
             FROM unnest(p_agencies, p_sequences, p_bets, p_digests, p_afters, p_winners)
                 WITH ORDINALITY AS u(agency, sequence, bets, digest, after, positions, first_names,
                                      last_names, documents, birthdates, i)
             ORDER BY u.i LOOP
        SELECT s.o_outcome, s.o_number, s.o_winners INTO o_outcome, o_number, o_winners
            FROM lottery_stage(r.agency, r.sequence, r.bets, r.digest, r.after,
                coalesce(r.positions, '{}'), coalesce(r.first_names, '{}'),
                coalesce(r.last_names, '{}'), coalesce(r.documents, '{}'),
                coalesce(r.birthdates, '{}')) AS s;
        o_index := r.i;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Marks agency p_agencies[i] done after p_batches[i] batches, for every i, in one
-- transaction, or says why not, one row per agency (o_index = i; o_outcome: done, finished,
-- out_of_sequence with o_expected, unknown). On done, also where the lottery stands right
-- after that agency's done: o_pending agencies not done, and o_total, the winners of all,
-- once o_pending is 0. Groups hold the lottery row's lock, so they run one at a time, and
-- within a group the agencies are decided one after the other (by agency): exactly one done
-- sees o_pending = 0, and its group notifies channel lottery_complete with the total
-- (store/postgres/notify.rs). The same agency twice in a group is decided in order: the
-- second is finished if the first is done.
CREATE OR REPLACE FUNCTION lottery_finish_group(p_agencies integer[], p_batches bigint[])
RETURNS TABLE (o_index integer, o_outcome text, o_expected bigint, o_bets bigint, o_winners bigint,
               o_pending bigint, o_total bigint)
SET plan_cache_mode = force_generic_plan
LANGUAGE plpgsql AS $$
DECLARE
    a agencies%ROWTYPE;
    n integer := coalesce(cardinality(p_agencies), 0);
    v_outcomes text[] := array_fill(NULL::text, ARRAY[n]);
    v_expected bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_bets bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_winners bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_pending bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    pending bigint;
    total bigint;
    i integer;
BEGIN
    PERFORM 1 FROM lottery FOR UPDATE;
    PERFORM 1 FROM agencies WHERE agency = ANY (p_agencies) ORDER BY agency FOR UPDATE;
    -- A new snapshot (read committed): every group committed before ours took the lock. When
    -- no agency is left pending, none can commit a batch any more: the total is final.
    SELECT count(*) FILTER (WHERE NOT x.done), coalesce(sum(x.winners), 0)::bigint
        INTO pending, total FROM agencies x;
    FOR i IN SELECT u.i FROM unnest(p_agencies) WITH ORDINALITY AS u(agency, i) ORDER BY u.agency, u.i LOOP
        SELECT * INTO a FROM agencies WHERE agency = p_agencies[i];
        IF NOT FOUND THEN
            v_outcomes[i] := 'unknown';
        ELSIF a.done THEN
            v_outcomes[i] := 'finished';
        ELSIF a.last_sequence <> p_batches[i] THEN
            v_outcomes[i] := 'out_of_sequence';
            v_expected[i] := a.last_sequence;
        ELSE
            UPDATE agencies SET done = true WHERE agency = p_agencies[i];
            v_outcomes[i] := 'done';
            v_bets[i] := a.bets;
            v_winners[i] := a.winners;
            pending := pending - 1;
            v_pending[i] := pending;
            -- Every central listening hears the total when (and only if) this transaction
            -- commits.
            IF pending = 0 THEN
                PERFORM pg_notify('lottery_complete', total::text);
            END IF;
        END IF;
    END LOOP;
    RETURN QUERY
        SELECT u.i::integer, u.outcome, u.expected, u.bets, u.winners, u.pending,
               CASE WHEN u.pending = 0 THEN total END
        FROM unnest(v_outcomes, v_expected, v_bets, v_winners, v_pending)
            WITH ORDINALITY AS u(outcome, expected, bets, winners, pending, i);
END
$$;
"#;

/// Creates whatever of the schema is missing and checks that the database holds a lottery
/// among `agencies` agencies (recording it if the database holds none yet). Returns whether
/// the lottery is new.
///
/// # Errors
/// A database error, or [`InstallError::Mismatch`] when the database holds a lottery among
/// another number of agencies.
pub(crate) fn install(client: &mut Client, agencies: u32) -> Result<bool, InstallError> {
    let count = i32::try_from(agencies).map_err(|_| InstallError::TooManyAgencies(agencies))?;
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
    tx.batch_execute(SCHEMA)?;
    let new =
        tx.execute("INSERT INTO lottery (agencies) VALUES ($1) ON CONFLICT DO NOTHING", &[&count])? == 1;
    let held: i32 = tx.query_one("SELECT agencies FROM lottery", &[])?.get(0);
    if held != count {
        return Err(InstallError::Mismatch { held, wanted: agencies });
    }
    tx.execute(
        "INSERT INTO agencies (agency) SELECT generate_series(1, $1) ON CONFLICT DO NOTHING",
        &[&count],
    )?;
    tx.commit()?;
    Ok(new)
}

/// Why the schema could not be installed.
#[derive(Debug)]
pub(crate) enum InstallError {
    /// The database refused or could not be reached.
    Database(postgres::Error),
    /// The database holds a lottery among `held` agencies, not `wanted`.
    Mismatch {
        /// Agencies of the lottery in the database.
        held: i32,
        /// Agencies configured.
        wanted: u32,
    },
    /// More agencies than the schema's `integer` columns hold.
    TooManyAgencies(u32),
}

impl From<postgres::Error> for InstallError {
    fn from(e: postgres::Error) -> Self {
        InstallError::Database(e)
    }
}
