-- retell.apply_webhook: one delivery, applied in one call (SPEC sections 4
-- and 5).  The module sends one call per statement, or, for deliveries that
-- waited for a connection together, several calls in one statement and so
-- one transaction and one commit (a batch, ngx_http_retell_pg_batch.c).
--
-- The ticket rules are not here: they live in C (ngx_http_retell_policy.c)
-- and arrive as two strings of 48 codes, p_rule_status and p_rule_email,
-- indexed by the merged facts of the call (see "facts index" below).
-- This function only merges facts, looks the answer up, and writes.

CREATE OR REPLACE FUNCTION retell.ms_to_timestamptz(ms bigint)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT to_timestamp(ms / 1000.0)
$$;

-- earlier versions (35 to 37 arguments, returning a set, the rules as
-- text[])
-- cannot be replaced in place by CREATE OR REPLACE: they are dropped first
-- (left in place, one with the rules as text[] would make every call
-- ambiguous, its parameters being untyped)
DO $$
DECLARE
    f  regprocedure;
BEGIN
    FOR f IN SELECT oid FROM pg_proc
              WHERE proname = 'apply_webhook'
                AND pronamespace = 'retell'::regnamespace
                AND (proretset OR pronargs <> 40
                     OR proargtypes[32] <> 'text'::regtype)
    LOOP
        EXECUTE 'DROP FUNCTION ' || f;
    END LOOP;
END;
$$;

-- A call's fact as a delivery leaves it: the delivery's value, or the
-- stored one when it has none; but a delivery from during the call (its
-- call_status registered or ongoing: a retried call_started or transfer
-- event) that arrives after the call ended only fills what is missing:
-- its transcript and variables are older than the stored ones.  Inlined
-- by the planner (one SQL expression).
CREATE OR REPLACE FUNCTION retell.call_fact(stored_status text,
                                            incoming_status text,
                                            stored anyelement,
                                            incoming anyelement)
RETURNS anyelement
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN incoming_status IN ('registered', 'ongoing')
                     AND stored_status IS NOT NULL
                     AND stored_status NOT IN ('registered', 'ongoing')
                THEN COALESCE(stored, incoming)
                ELSE COALESCE(incoming, stored) END
$$;

CREATE OR REPLACE FUNCTION retell.apply_webhook(
    p_endpoint              text,       -- 'inbound' or 'outbound'
    p_event                 text,
    p_call_id               text,
    p_payload               text,       -- the raw body
    p_fallback_company      bigint,     -- retell_company, NULL when unset
    p_agent_id              text,
    p_from_number           text,
    p_to_number             text,
    p_phone_raw             text,       -- the customer's number as sent
    p_phone_e164            text,       -- NULL when unusable
    p_phone_display         text,
    p_call_status           text,
    p_disconnection_reason  text,
    p_start_ms              bigint,
    p_end_ms                bigint,
    p_duration_ms           bigint,
    p_transcript            text,
    p_recording_url         text,
    p_transfer_destination  text,
    p_call_summary          text,
    p_call_successful       boolean,
    p_in_voicemail          boolean,
    p_user_sentiment        text,
    p_custom_analysis_data  jsonb,
    p_collected             jsonb,
    p_llm_variables         jsonb,
    p_metadata              jsonb,
    p_action_analysis       boolean,    -- action_required by source
    p_action_collected      boolean,
    p_qualified             boolean,    -- NULL without custom_analysis_data
    p_transferred           boolean,
    p_analyzed              boolean,
    p_rule_status           text,       -- 48 codes, see "facts index"
    p_rule_email            text,
    p_budget_ms             integer,    -- what is left of the delivery's time
    -- in a batch (several deliveries in one statement), the longest wait
    -- for a row lock: the batch then fails fast and each is applied alone;
    -- the default keeps a 35-argument caller working during an upgrade
    p_lock_wait_ms          integer DEFAULT NULL,
    -- the call's own direction, which may differ from the endpoint's
    -- (p_endpoint: the rules applied); a module from before sends none
    p_direction             text DEFAULT NULL,
    -- facts and fields of issue 18: NULL from a module from before
    p_transfer_failed       boolean DEFAULT NULL,
    p_call_failed           boolean DEFAULT NULL,
    p_data_storage_setting  text DEFAULT NULL,
    -- one row, not a set: no tuplestore for a single answer
    OUT ticket_id           bigint,
    OUT ticket_status       text,
    OUT email               text,
    OUT duplicate           boolean,
    OUT routed              boolean,
    OUT invalid_recipients  text[],
    OUT email_queued        boolean)
LANGUAGE plpgsql AS $$
DECLARE
    -- the whole statement's start: in a batch, the members before this
    -- one count against its budget too
    v_started     timestamptz := statement_timestamp();
    v_sha         bytea := sha256(convert_to(p_payload, 'UTF8'));
    v_event_id    bigint;
    v_company     bigint;
    v_customer    bigint;
    v_unnamed     boolean;
    -- an empty name is none: the inbound call webhook answers "" for a
    -- known caller without one, and Retell echoes it back in the call
    v_name        text := COALESCE(NULLIF(p_collected ->> 'customer_name', ''),
                                   NULLIF(p_llm_variables ->> 'customer_name', ''));
    v_call        record;
    v_idx         integer;
    v_wide        boolean;
    v_status      text;
    v_reason      text;
    v_email       text := 'none';
    v_queued      boolean := false;
    v_enabled     boolean;
    v_valid       text[];
    v_invalid     text[];
BEGIN
    -- a row lock held elsewhere must not outlive the delivery
    PERFORM set_config('lock_timeout',
                       least(greatest(p_budget_ms - (extract(epoch FROM
                                          clock_timestamp() - v_started)
                                          * 1000)::integer, 1),
                             greatest(COALESCE(p_lock_wait_ms, p_budget_ms), 1))
                       || 'ms', true);

    -- routing: the call's company once known, else the agent's, else
    -- the location's retell_company
    SELECT c.company_id INTO v_company
      FROM retell.calls c WHERE c.call_id = p_call_id;

    IF v_company IS NULL THEN
        SELECT a.company_id INTO v_company
          FROM retell.agents a WHERE a.agent_id = p_agent_id;
    END IF;

    v_company := COALESCE(v_company, p_fallback_company);

    -- the delivery itself: an identical body already applied changes
    -- nothing; one stored unrouted is applied once its agent is mapped
    INSERT INTO retell.webhook_events AS w
           (endpoint, event, call_id, payload, payload_sha256, company_id,
            applied_at)
    VALUES (p_endpoint, p_event, p_call_id, p_payload::jsonb, v_sha,
            v_company, CASE WHEN v_company IS NOT NULL THEN now() END)
    ON CONFLICT (payload_sha256) DO UPDATE
       SET company_id = EXCLUDED.company_id,
           applied_at = EXCLUDED.applied_at,
           -- a tombstone (sql/004) gets its body back when it is applied
           payload = COALESCE(w.payload, EXCLUDED.payload),
           pruned_at = NULL
     WHERE w.applied_at IS NULL AND EXCLUDED.company_id IS NOT NULL
    RETURNING w.id INTO v_event_id;

    duplicate := v_event_id IS NULL;
    invalid_recipients := '{}';
    email_queued := false;

    IF duplicate THEN
        SELECT t.id, t.status,
               CASE WHEN o.id IS NULL THEN 'none' ELSE 'queued' END,
               EXISTS (SELECT 1 FROM retell.webhook_events w
                        WHERE w.payload_sha256 = v_sha
                          AND w.applied_at IS NOT NULL)
          INTO ticket_id, ticket_status, email, routed
          FROM (SELECT 1) one
          LEFT JOIN retell.tickets t ON t.call_id = p_call_id
          LEFT JOIN retell.email_outbox o ON o.call_id = p_call_id;
        RETURN;
    END IF;

    IF v_company IS NULL THEN
        email := 'none';
        routed := false;
        RETURN;
    END IF;

    -- the caller the inbound call webhook found (sql/005): its answer's
    -- metadata comes back with every event of the call, so the call is
    -- that customer's without a second match by phone, if still of this
    -- company; the phone stays the fallback
    IF p_metadata ->> 'retell_customer_id' ~ '^[0-9]{1,18}$' THEN
        SELECT cu.id, cu.name IS NULL INTO v_customer, v_unnamed
          FROM retell.customers cu
         WHERE cu.id = (p_metadata ->> 'retell_customer_id')::bigint
           AND cu.company_id = v_company;

        -- the name is filled as by a match by phone
        IF v_unnamed AND v_name IS NOT NULL THEN
            UPDATE retell.customers SET name = v_name
             WHERE id = v_customer AND name IS NULL;
        END IF;
    END IF;

    IF v_customer IS NULL AND p_phone_e164 IS NOT NULL THEN
        INSERT INTO retell.customers AS cu
               (company_id, phone_e164, phone_raw, phone_display, name)
        VALUES (v_company, p_phone_e164, p_phone_raw, p_phone_display, v_name)
        ON CONFLICT (company_id, phone_e164) DO UPDATE
           SET name = COALESCE(cu.name, EXCLUDED.name)
        RETURNING cu.id INTO v_customer;
    END IF;

    -- later events fill facts, never erase them
    INSERT INTO retell.calls AS c
           (call_id, company_id, customer_id, direction, agent_id,
            from_number, to_number, customer_phone_display, call_status,
            disconnection_reason, started_at, ended_at, duration_ms,
            transcript, recording_url, transfer_destination, call_summary,
            call_successful, in_voicemail, user_sentiment,
            custom_analysis_data, collected_dynamic_variables,
            retell_llm_dynamic_variables, metadata,
            action_required_analysis, action_required_collected,
            action_required, qualified, transferred, analyzed,
            transfer_failed, call_failed, data_storage_setting)
    VALUES (p_call_id, v_company, v_customer,
            COALESCE(p_direction, p_endpoint), p_agent_id,
            p_from_number, p_to_number, p_phone_display, p_call_status,
            p_disconnection_reason, retell.ms_to_timestamptz(p_start_ms),
            retell.ms_to_timestamptz(p_end_ms), p_duration_ms,
            p_transcript, p_recording_url, p_transfer_destination,
            p_call_summary, p_call_successful, p_in_voicemail,
            p_user_sentiment, p_custom_analysis_data, p_collected,
            p_llm_variables, p_metadata,
            p_action_analysis, p_action_collected,
            COALESCE(p_action_analysis, p_action_collected), p_qualified,
            p_transferred, p_analyzed, COALESCE(p_transfer_failed, false),
            COALESCE(p_call_failed, false), p_data_storage_setting)
    ON CONFLICT (call_id) DO UPDATE SET
        -- a call's facts grow: a delivery's value replaces the stored one
        -- (retell.call_fact: not a late one's from during the call)
        customer_id = COALESCE(c.customer_id, EXCLUDED.customer_id),
        agent_id = COALESCE(EXCLUDED.agent_id, c.agent_id),
        from_number = COALESCE(EXCLUDED.from_number, c.from_number),
        to_number = COALESCE(EXCLUDED.to_number, c.to_number),
        customer_phone_display = COALESCE(EXCLUDED.customer_phone_display,
                                          c.customer_phone_display),
        -- a late "ongoing" does not take an ended call back
        call_status = CASE
            WHEN EXCLUDED.call_status IN ('registered', 'ongoing')
                 AND c.call_status IS NOT NULL
            THEN c.call_status
            ELSE COALESCE(EXCLUDED.call_status, c.call_status) END,
        disconnection_reason = retell.call_fact(c.call_status, EXCLUDED.call_status,
            c.disconnection_reason, EXCLUDED.disconnection_reason),
        started_at = COALESCE(c.started_at, EXCLUDED.started_at),
        ended_at = retell.call_fact(c.call_status, EXCLUDED.call_status,
            c.ended_at, EXCLUDED.ended_at),
        duration_ms = retell.call_fact(c.call_status, EXCLUDED.call_status,
            c.duration_ms, EXCLUDED.duration_ms),
        transcript = retell.call_fact(c.call_status, EXCLUDED.call_status,
            c.transcript, EXCLUDED.transcript),
        recording_url = retell.call_fact(c.call_status, EXCLUDED.call_status,
            c.recording_url, EXCLUDED.recording_url),
        transfer_destination = retell.call_fact(c.call_status, EXCLUDED.call_status,
            c.transfer_destination, EXCLUDED.transfer_destination),
        call_summary = COALESCE(EXCLUDED.call_summary, c.call_summary),
        call_successful = COALESCE(EXCLUDED.call_successful,
                                   c.call_successful),
        in_voicemail = retell.call_fact(c.call_status, EXCLUDED.call_status,
            c.in_voicemail, EXCLUDED.in_voicemail),
        user_sentiment = COALESCE(EXCLUDED.user_sentiment, c.user_sentiment),
        custom_analysis_data = COALESCE(EXCLUDED.custom_analysis_data,
                                        c.custom_analysis_data),
        collected_dynamic_variables = retell.call_fact(c.call_status, EXCLUDED.call_status,
            c.collected_dynamic_variables, EXCLUDED.collected_dynamic_variables),
        retell_llm_dynamic_variables = retell.call_fact(c.call_status, EXCLUDED.call_status,
            c.retell_llm_dynamic_variables, EXCLUDED.retell_llm_dynamic_variables),
        metadata = retell.call_fact(c.call_status, EXCLUDED.call_status,
            c.metadata, EXCLUDED.metadata),
        action_required_analysis =
            COALESCE(EXCLUDED.action_required_analysis,
                     c.action_required_analysis),
        action_required_collected = retell.call_fact(c.call_status, EXCLUDED.call_status,
            c.action_required_collected, EXCLUDED.action_required_collected),
        -- custom_analysis_data outranks the collected variables, whatever
        -- order they arrived in
        action_required = COALESCE(EXCLUDED.action_required_analysis,
                                   c.action_required_analysis,
                                   retell.call_fact(c.call_status,
                                       EXCLUDED.call_status,
                                       c.action_required_collected,
                                       EXCLUDED.action_required_collected)),
        qualified = COALESCE(EXCLUDED.qualified, c.qualified),
        transferred = c.transferred OR EXCLUDED.transferred,
        analyzed = c.analyzed OR EXCLUDED.analyzed,
        transfer_failed = c.transfer_failed OR EXCLUDED.transfer_failed,
        call_failed = c.call_failed OR EXCLUDED.call_failed,
        data_storage_setting = COALESCE(EXCLUDED.data_storage_setting,
                                        c.data_storage_setting),
        updated_at = now()
    RETURNING c.company_id, c.customer_id, c.transferred, c.action_required,
              c.analyzed, c.qualified, c.call_successful, c.transfer_failed,
              c.call_failed
         INTO v_call;

    v_wide := left(p_rule_status, 1) <> '{'
              AND length(p_rule_status) >= 192;

    -- facts index, 1-based: call_failed 96, transfer_failed 48,
    -- transferred 24, action_required true 16 / false 8 / absent 0,
    -- analyzed 4, qualified 2, call_successful 1.  A module from before
    -- sends 48 codes: the first two facts were not known to it.
    v_idx := 1
        + CASE WHEN v_wide AND v_call.call_failed THEN 96 ELSE 0 END
        + CASE WHEN v_wide AND v_call.transfer_failed THEN 48 ELSE 0 END
        + CASE WHEN v_call.transferred THEN 24 ELSE 0 END
        + CASE v_call.action_required WHEN true THEN 16 WHEN false THEN 8
               ELSE 0 END
        + CASE WHEN v_call.analyzed THEN 4 ELSE 0 END
        + CASE WHEN v_call.qualified THEN 2 ELSE 0 END
        + CASE WHEN v_call.call_successful THEN 1 ELSE 0 END;

    -- one digit per index, the value of the C enum (policy.h): a string,
    -- not a text[], as an array parameter is parsed and then expanded at
    -- every call.  Email reason 0 (none) falls outside its array: NULL.
    -- An array literal is what modules before 2026-12 send.
    IF left(p_rule_status, 1) <> '{' THEN
        v_status := (ARRAY['new', 'qualified', 'contacted', 'resolved',
                           'closed'])[substr(p_rule_status, v_idx, 1)::int + 1];
        v_reason := (ARRAY['action_required', 'call_transfer',
                           'transfer_failed', 'call_failed'])
                    [substr(p_rule_email, v_idx, 1)::int];
    ELSE
        v_status := (p_rule_status::text[])[v_idx];
        v_reason := NULLIF((p_rule_email::text[])[v_idx], '');
    END IF;

    -- staff win: a status they set is never changed by an event
    INSERT INTO retell.tickets AS t (company_id, customer_id, call_id, status)
    VALUES (v_call.company_id, v_call.customer_id, p_call_id, v_status)
    ON CONFLICT (call_id) DO UPDATE SET
        customer_id = COALESCE(t.customer_id, EXCLUDED.customer_id),
        status = CASE WHEN t.status_source = 'retell'
                      THEN EXCLUDED.status ELSE t.status END,
        updated_at = CASE WHEN t.status_source = 'retell'
                               AND t.status <> EXCLUDED.status
                          THEN now() ELSE t.updated_at END
    RETURNING t.id, t.status INTO ticket_id, ticket_status;

    v_invalid := '{}';

    -- the call's one email: queued already (by this event's facts or an
    -- earlier event's, which it keeps), or now if the facts ask for it
    IF EXISTS (SELECT 1 FROM retell.email_outbox o
                WHERE o.call_id = p_call_id)
    THEN
        v_email := 'queued';

    ELSIF v_reason IS NOT NULL THEN
        -- checked when the company's list was written (003)
        SELECT co.email_notifications_enabled, co.valid_recipients,
               co.invalid_recipients
          INTO v_enabled, v_valid, v_invalid
          FROM retell.companies co WHERE co.id = v_call.company_id;

        IF NOT v_enabled THEN
            v_email := 'disabled';
            v_invalid := '{}';

        ELSIF cardinality(v_valid) = 0 THEN
            v_email := 'no_recipients';

        ELSE
            INSERT INTO retell.email_outbox
                   (company_id, ticket_id, call_id, reason, recipients)
            VALUES (v_call.company_id, ticket_id, p_call_id, v_reason,
                    v_valid)
            ON CONFLICT (call_id) DO NOTHING;

            v_queued := FOUND;
            v_email := 'queued';
        END IF;
    END IF;

    -- past its time the client has been told 503: do not commit behind it
    IF clock_timestamp() - v_started > p_budget_ms * interval '1 ms' THEN
        RAISE EXCEPTION 'delivery of call % took longer than % ms',
                        p_call_id, p_budget_ms
              USING ERRCODE = 'query_canceled';
    END IF;

    email := v_email;
    routed := true;
    invalid_recipients := v_invalid;
    email_queued := v_queued;
END;
$$;
