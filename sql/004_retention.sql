-- Retention of raw payloads (issue 20, the README's "Retention"):
-- idempotent, applied after 001-003 by tools/migrate.
--
-- A payload past its age becomes a tombstone: the payload is dropped
-- (transcripts are personal data), the digest and the routing columns
-- stay, so a very late redelivery of the same body is still recognised as
-- a duplicate and changes nothing.  Calls, tickets and the outbox are
-- never touched.

-- The tombstones' column, pruned_at, is added by 001_schema.sql, so that
-- 002's function finds it whatever order a running nginx meets them in.

-- One bounded step: the next p_batch rows not yet pruned, by primary key
-- after p_after, those past their age turned into tombstones (applied:
-- p_applied_age; stored unrouted: p_unrouted_age).  Returns the last id
-- examined (the next call's p_after), how many were pruned, and whether
-- the scan reached rows too young for either age (ids grow with time:
-- nothing after them is due).  Each call is its own short transaction: no
-- long lock, no WAL burst.  The tombstones are passed over, not counted
-- in a batch: a run stopped after N batches (--max-batches) goes on from
-- where it stopped the next time, not over the same rows again.
CREATE OR REPLACE FUNCTION retell.prune_payloads(
    p_applied_age   interval,
    p_unrouted_age  interval,
    p_after         bigint DEFAULT 0,
    p_batch         integer DEFAULT 1000,
    OUT last_id     bigint,
    OUT pruned      integer,
    OUT done        boolean)
LANGUAGE sql AS $$
    WITH scan AS (
        SELECT id, received_at, applied_at
          FROM retell.webhook_events
         WHERE id > p_after AND pruned_at IS NULL
         ORDER BY id
         LIMIT p_batch
    ), victims AS (
        SELECT id FROM scan
         WHERE ((applied_at IS NOT NULL
                 AND received_at < now() - p_applied_age)
                OR (applied_at IS NULL
                    AND received_at < now() - p_unrouted_age))
    ), tombstones AS (
        UPDATE retell.webhook_events w
           SET payload = NULL, pruned_at = now()
          FROM victims v
         WHERE w.id = v.id
        RETURNING 1
    )
    SELECT (SELECT max(id) FROM scan),
           (SELECT count(*)::integer FROM tombstones),
           (SELECT count(*) < p_batch
                   OR max(received_at)
                      >= now() - least(p_applied_age, p_unrouted_age)
              FROM scan)
$$;
