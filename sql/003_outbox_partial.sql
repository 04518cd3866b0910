-- The outbox, issue 17 (docs/email.md, docs/decisions.md): idempotent, and
-- applied after 001 by tools/migrate and by the tests' cluster.
--
-- pending_recipients: who is still to get the row's email, NULL for all
-- of `recipients`.  A session where some recipients were accepted and
-- others refused with a 4xx (greylisting, "452 too many recipients")
-- keeps the row pending with only the refused ones here, so the accepted
-- ones are never sent it twice.
--
-- lease_token: the fence of the outbox lease.  Each claim adds one, and
-- renewal and record match it, so a worker that lost its lease changes
-- nothing even after the "send again" SQL set attempts back to 0.  Never
-- written by hand.

-- only when missing: ALTER TABLE locks the table even when it has nothing
-- to do (see 001_schema.sql)
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                    WHERE table_schema = 'retell'
                      AND table_name = 'email_outbox'
                      AND column_name = 'lease_token')
    THEN
        ALTER TABLE retell.email_outbox
            ADD COLUMN IF NOT EXISTS pending_recipients text[] NULL,
            ADD COLUMN IF NOT EXISTS lease_token bigint NOT NULL DEFAULT 0;
    END IF;
END;
$$;
