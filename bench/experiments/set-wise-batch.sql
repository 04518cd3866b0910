-- An experiment, not part of the module: a batch of deliveries applied
-- set-wise (one statement of data-modifying CTEs for all the batch's
-- deliveries) against retell.apply_webhook called once per delivery, four
-- calls in one statement as the module's batches do.  docs/BENCHMARKS.md
-- ("Fewer statements in the function") has the result.  Distinct calls in
-- each batch only: ON CONFLICT cannot touch one row twice in a statement.
--
-- On a cluster made by bench/pg (companies 1 and the agent of the samples
-- inserted, as bench/run does), with synchronous_commit off so that the
-- elapsed time is the CPU's:
--   psql "$conninfo" -f bench/experiments/set-wise-batch.sql
--   psql "$conninfo" -c "CALL bench_run('set', 500, 's1-')"   -- 6,000 deliveries
--   psql "$conninfo" -c "CALL bench_run('each', 500, 'e1-')"
--   psql "$conninfo" -c "CALL bench_run('none', 500, 'n1-')"  -- building the batches alone
-- alternating, and the tickets and outbox rows of 's' and 'e' calls
-- compared.

-- prototype, measurement only: a batch of deliveries of distinct calls applied set-wise
DROP TYPE IF EXISTS bench_delivery CASCADE;
CREATE TYPE bench_delivery AS (
    k int, endpoint text, event text, call_id text, payload text, fallback bigint, agent_id text,
    from_number text, to_number text, phone_raw text, phone_e164 text, phone_display text,
    call_status text, disconnection_reason text, start_ms bigint, end_ms bigint, duration_ms bigint,
    transcript text, recording_url text, transfer_destination text, call_summary text,
    call_successful boolean, in_voicemail boolean, user_sentiment text, custom_analysis_data jsonb,
    collected jsonb, llm_variables jsonb, metadata jsonb, action_analysis boolean,
    action_collected boolean, qualified boolean, transferred boolean, analyzed boolean,
    rule_status text, rule_email text);

CREATE OR REPLACE FUNCTION bench_apply_batch(b bench_delivery[])
RETURNS TABLE (k int, ticket_id bigint, ticket_status text, email text)
LANGUAGE plpgsql AS $f$
BEGIN
    PERFORM set_config('lock_timeout', '100ms', true);
    RETURN QUERY
    WITH d AS (
        SELECT x.*, sha256(convert_to(x.payload, 'UTF8')) AS sha,
               COALESCE((SELECT c.company_id FROM retell.calls c WHERE c.call_id = x.call_id),
                        (SELECT a.company_id FROM retell.agents a WHERE a.agent_id = x.agent_id),
                        x.fallback) AS company_id
          FROM unnest(b) x
    ), ev AS (
        INSERT INTO retell.webhook_events AS w
               (endpoint, event, call_id, payload, payload_sha256, company_id, applied_at)
        SELECT d.endpoint, d.event, d.call_id, d.payload::jsonb, d.sha, d.company_id,
               CASE WHEN d.company_id IS NOT NULL THEN now() END
          FROM d
        ON CONFLICT (payload_sha256) DO UPDATE
           SET company_id = EXCLUDED.company_id, applied_at = EXCLUDED.applied_at
         WHERE w.applied_at IS NULL AND EXCLUDED.company_id IS NOT NULL
        RETURNING w.payload_sha256, w.company_id
    ), dd AS (
        SELECT d.* FROM d JOIN ev ON ev.payload_sha256 = d.sha WHERE ev.company_id IS NOT NULL
    ), cu AS (
        INSERT INTO retell.customers AS cu (company_id, phone_e164, phone_raw, phone_display, name)
        SELECT dd.company_id, dd.phone_e164, dd.phone_raw, dd.phone_display,
               COALESCE(dd.collected ->> 'customer_name', dd.llm_variables ->> 'customer_name')
          FROM dd WHERE dd.phone_e164 IS NOT NULL
        ON CONFLICT (company_id, phone_e164) DO UPDATE SET name = COALESCE(cu.name, EXCLUDED.name)
        RETURNING cu.id, cu.company_id, cu.phone_e164
    ), ca AS (
        INSERT INTO retell.calls AS c
               (call_id, company_id, customer_id, direction, agent_id,
                from_number, to_number, customer_phone_display, call_status,
                disconnection_reason, started_at, ended_at, duration_ms,
                transcript, recording_url, transfer_destination, call_summary,
                call_successful, in_voicemail, user_sentiment,
                custom_analysis_data, collected_dynamic_variables,
                retell_llm_dynamic_variables, metadata,
                action_required_analysis, action_required_collected,
                action_required, qualified, transferred, analyzed)
        SELECT dd.call_id, dd.company_id, cu.id, dd.endpoint, dd.agent_id,
               dd.from_number, dd.to_number, dd.phone_display, dd.call_status,
               dd.disconnection_reason, retell.ms_to_timestamptz(dd.start_ms),
               retell.ms_to_timestamptz(dd.end_ms), dd.duration_ms,
               dd.transcript, dd.recording_url, dd.transfer_destination, dd.call_summary,
               dd.call_successful, dd.in_voicemail, dd.user_sentiment,
               dd.custom_analysis_data, dd.collected, dd.llm_variables, dd.metadata,
               dd.action_analysis, dd.action_collected,
               COALESCE(dd.action_analysis, dd.action_collected), dd.qualified,
               dd.transferred, dd.analyzed
          FROM dd LEFT JOIN cu ON cu.company_id = dd.company_id AND cu.phone_e164 = dd.phone_e164
        ON CONFLICT (call_id) DO UPDATE SET
            customer_id = COALESCE(c.customer_id, EXCLUDED.customer_id),
            agent_id = COALESCE(EXCLUDED.agent_id, c.agent_id),
            from_number = COALESCE(EXCLUDED.from_number, c.from_number),
            to_number = COALESCE(EXCLUDED.to_number, c.to_number),
            customer_phone_display = COALESCE(EXCLUDED.customer_phone_display, c.customer_phone_display),
            call_status = CASE WHEN EXCLUDED.call_status IN ('registered', 'ongoing') AND c.call_status IS NOT NULL
                THEN c.call_status ELSE COALESCE(EXCLUDED.call_status, c.call_status) END,
            disconnection_reason = COALESCE(EXCLUDED.disconnection_reason, c.disconnection_reason),
            started_at = COALESCE(c.started_at, EXCLUDED.started_at),
            ended_at = COALESCE(EXCLUDED.ended_at, c.ended_at),
            duration_ms = COALESCE(EXCLUDED.duration_ms, c.duration_ms),
            transcript = COALESCE(EXCLUDED.transcript, c.transcript),
            recording_url = COALESCE(EXCLUDED.recording_url, c.recording_url),
            transfer_destination = COALESCE(EXCLUDED.transfer_destination, c.transfer_destination),
            call_summary = COALESCE(EXCLUDED.call_summary, c.call_summary),
            call_successful = COALESCE(EXCLUDED.call_successful, c.call_successful),
            in_voicemail = COALESCE(EXCLUDED.in_voicemail, c.in_voicemail),
            user_sentiment = COALESCE(EXCLUDED.user_sentiment, c.user_sentiment),
            custom_analysis_data = COALESCE(EXCLUDED.custom_analysis_data, c.custom_analysis_data),
            collected_dynamic_variables = COALESCE(EXCLUDED.collected_dynamic_variables, c.collected_dynamic_variables),
            retell_llm_dynamic_variables = COALESCE(EXCLUDED.retell_llm_dynamic_variables, c.retell_llm_dynamic_variables),
            metadata = COALESCE(EXCLUDED.metadata, c.metadata),
            action_required_analysis = COALESCE(EXCLUDED.action_required_analysis, c.action_required_analysis),
            action_required_collected = COALESCE(EXCLUDED.action_required_collected, c.action_required_collected),
            action_required = COALESCE(EXCLUDED.action_required_analysis, c.action_required_analysis,
                                       EXCLUDED.action_required_collected, c.action_required_collected),
            qualified = COALESCE(EXCLUDED.qualified, c.qualified),
            transferred = c.transferred OR EXCLUDED.transferred,
            analyzed = c.analyzed OR EXCLUDED.analyzed,
            updated_at = now()
        RETURNING c.call_id, c.company_id, c.customer_id,
                  1 + CASE WHEN c.transferred THEN 24 ELSE 0 END
                    + CASE c.action_required WHEN true THEN 16 WHEN false THEN 8 ELSE 0 END
                    + CASE WHEN c.analyzed THEN 4 ELSE 0 END
                    + CASE WHEN c.qualified THEN 2 ELSE 0 END
                    + CASE WHEN c.call_successful THEN 1 ELSE 0 END AS idx
    ), r AS (
        SELECT ca.*, dd.k,
               (ARRAY['new','qualified','contacted','resolved','closed'])[substr(dd.rule_status, ca.idx, 1)::int + 1] AS status,
               (ARRAY['action_required','call_transfer'])[substr(dd.rule_email, ca.idx, 1)::int] AS reason
          FROM ca JOIN dd ON dd.call_id = ca.call_id
    ), ti AS (
        INSERT INTO retell.tickets AS t (company_id, customer_id, call_id, status)
        SELECT r.company_id, r.customer_id, r.call_id, r.status FROM r
        ON CONFLICT (call_id) DO UPDATE SET
            customer_id = COALESCE(t.customer_id, EXCLUDED.customer_id),
            status = CASE WHEN t.status_source = 'retell' THEN EXCLUDED.status ELSE t.status END,
            updated_at = CASE WHEN t.status_source = 'retell' AND t.status <> EXCLUDED.status
                              THEN now() ELSE t.updated_at END
        RETURNING t.id, t.status, t.call_id
    ), ob AS (
        INSERT INTO retell.email_outbox (company_id, ticket_id, call_id, reason, recipients)
        SELECT r.company_id, ti.id, r.call_id, r.reason, co.valid_recipients
          FROM r JOIN ti ON ti.call_id = r.call_id JOIN retell.companies co ON co.id = r.company_id
         WHERE r.reason IS NOT NULL AND co.email_notifications_enabled AND cardinality(co.valid_recipients) > 0

        ON CONFLICT (call_id) DO NOTHING
        RETURNING call_id
    )
    SELECT r.k, ti.id, ti.status, CASE WHEN r.reason IS NULL THEN 'none' ELSE 'queued' END
      FROM r JOIN ti ON ti.call_id = r.call_id
      LEFT JOIN ob ON ob.call_id = r.call_id;
END;
$f$;

-- the same deliveries through retell.apply_webhook, 4 calls in one statement as the module does
CREATE OR REPLACE FUNCTION bench_apply_each(b bench_delivery[])
RETURNS TABLE (k int, ticket_id bigint, ticket_status text, email text)
LANGUAGE plpgsql AS $f$
BEGIN
    RETURN QUERY
    SELECT x.k, a.ticket_id, a.ticket_status, a.email
      FROM unnest(b) x,
           LATERAL retell.apply_webhook(x.endpoint, x.event, x.call_id, x.payload, x.fallback, x.agent_id,
               x.from_number, x.to_number, x.phone_raw, x.phone_e164, x.phone_display, x.call_status,
               x.disconnection_reason, x.start_ms, x.end_ms, x.duration_ms, x.transcript, x.recording_url,
               x.transfer_destination, x.call_summary, x.call_successful, x.in_voicemail, x.user_sentiment,
               x.custom_analysis_data, x.collected, x.llm_variables, x.metadata, x.action_analysis,
               x.action_collected, x.qualified, x.transferred, x.analyzed, x.rule_status, x.rule_email,
               5000, 100) a;
END;
$f$;

-- a batch of 4 deliveries: calls g*4 .. g*4+3, event e (0 started, 1 ended, 2 analyzed)
CREATE OR REPLACE FUNCTION bench_batch(g int, e int, tag text) RETURNS bench_delivery[]
LANGUAGE sql AS $f$
SELECT array_agg(ROW(
    i, 'inbound', (ARRAY['call_started','call_ended','call_analyzed'])[e + 1], tag || (g * 4 + i),
    format('{"event":"%s","call":{"call_id":"%s","agent_id":"agent_8a1b2c3d4e5f60718293a4b5","from_number":"+1415555%s","to_number":"+14155550100","transcript":"%s","metadata":{"run":"x"}}}',
           (ARRAY['call_started','call_ended','call_analyzed'])[e + 1], tag || (g * 4 + i), 1000 + (g * 4 + i) % 8000, repeat('Agent: hello, how can I help? User: I am calling about the unit. ', 16)),
    NULL, 'agent_8a1b2c3d4e5f60718293a4b5',
    '+1415555' || (1000 + (g * 4 + i) % 8000), '+14155550100', '+1 (415) 555-' || (1000 + (g * 4 + i) % 8000),
    '+1415555' || (1000 + (g * 4 + i) % 8000), '(415) 555-' || (1000 + (g * 4 + i) % 8000),
    CASE e WHEN 0 THEN 'ongoing' ELSE 'ended' END, CASE WHEN e > 0 THEN 'user_hangup' END,
    1796144024115, CASE WHEN e > 0 THEN 1796144084115 END, CASE WHEN e > 0 THEN 60000 END,
    CASE WHEN e > 0 THEN repeat('Agent: hello, how can I help? User: I am calling about the unit. ', 16) END,
    CASE WHEN e > 0 THEN 'https://example.test/rec.wav' END, NULL,
    CASE WHEN e = 2 THEN 'The caller asked about a unit.' END,
    CASE WHEN e = 2 THEN true END, CASE WHEN e = 2 THEN false END, CASE WHEN e = 2 THEN 'Neutral' END,
    CASE WHEN e = 2 THEN '{"action_required": true, "lead_qualified": true}'::jsonb END,
    CASE WHEN e > 0 THEN '{"customer_name": "Dana"}'::jsonb END, '{"customer_name": "Dana"}'::jsonb,
    '{"run": "x"}'::jsonb,
    CASE WHEN e = 2 THEN i % 2 = 0 END, NULL, CASE WHEN e = 2 THEN true END, false, e = 2,
    '000023114444444400000000000000000000000000000000', '000000000000000011111111222222222222222222222222'
)::bench_delivery)
FROM generate_series(0, 3) i
$f$;

CREATE OR REPLACE PROCEDURE bench_run(kind text, groups int, tag text)
LANGUAGE plpgsql AS $f$
DECLARE g int; e int; b bench_delivery[];
BEGIN
    FOR g IN 0 .. groups - 1 LOOP
        FOR e IN 0 .. 2 LOOP
            b := bench_batch(g, e, tag);
            IF kind = 'set' THEN PERFORM bench_apply_batch(b); ELSIF kind = 'each' THEN PERFORM bench_apply_each(b); END IF;
            COMMIT;
        END LOOP;
    END LOOP;
END;
$f$;
