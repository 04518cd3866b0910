# Prepared statements (issue 10, ngx_http_retell_pg_prepared.c,
# retell_postgres_prepare): the delivery's statement is parsed once per
# connection and then executed by name; with the directive off it is sent
# unnamed every time.  What PostgreSQL did is read from its own log: the
# module's connections ask for log_min_duration_statement = 0 in their
# conninfo, so the server logs each parse and execute, with the statement's
# name.  Through a pooler in transaction mode, t/080-scale.t.
use lib 't/inc';
use Test::Nginx::Socket 'no_plan';
use Retell;

sub R { Retell::sample(@_) }

master_on();
workers(1);

# the module's connections log their statements
sub logging_http_config {
    return pg_logging_http_config() . "retell_postgres_pool 1;\n";
}

my $preprocess = db_block_preprocessor(
    each => \&pg_log_mark,
    http_config => \&logging_http_config);
add_block_preprocessor(sub { $preprocess->(@_) });

add_response_body_check(\&db_check_hook);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: by default the statement is prepared once per connection, then executed by name
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ],
  [ '/in', ::R('inbound-call_ended') ],
  [ '/in', ::R('inbound-call_analyzed-action_required') ] ]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[ qr/"ticket_status":"new","email":"none"/,
  qr/"ticket_status":"new","email":"none"/,
  qr/"ticket_status":"new","email":"queued","duplicate":false/ ]
--- db_check
ok(::wait_for(sub { pg_logged(qr/execute retell_[0-9a-f]{8}: SELECT ticket_id/) >= 3 }, 5),
   "$name: three executions of the named statement");
is(pg_logged(qr/execute retell_[0-9a-f]{8}: SELECT ticket_id/), 3, "$name: three, not more");
is(pg_logged(qr/parse retell_[0-9a-f]{8}: SELECT ticket_id/), 1, "$name: parsed once");
is(pg_logged(qr/(?:parse|execute) <unnamed>: SELECT ticket_id/), 0, "$name: never sent unnamed");
is(db_value(q{SELECT count(*) FROM retell.webhook_events}), 3, "$name: three events");
--- no_error_log
[error]



=== TEST 2: retell_postgres_prepare off: the statement is sent unnamed every time
--- http_config eval
::logging_http_config() . "retell_postgres_prepare off;\n"
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ],
  [ '/in', ::R('inbound-call_ended') ] ]
--- error_code eval
[200, 200]
--- db_check
ok(::wait_for(sub { pg_logged(qr/execute <unnamed>: SELECT ticket_id/) >= 2 }, 5),
   "$name: two unnamed executions");
is(pg_logged(qr/parse <unnamed>: SELECT ticket_id/), 2, "$name: parsed each time");
is(pg_logged(qr/retell_[0-9a-f]{8}:/), 0, "$name: no named statement");
--- no_error_log
[error]



=== TEST 3: a connection made again prepares again: its server session is new
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ] ]
--- error_code: 200
--- db_check
ok(::wait_for(sub { pg_logged(qr/parse retell_[0-9a-f]{8}: SELECT ticket_id/) == 1 }, 5), "$name: prepared on the first connection");
# the module's session ends under it (the server restarted it, an operator)
my $killed = db_value(q{SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                         WHERE query LIKE '%retell.apply_webhook(%' AND pid <> pg_backend_pid()});
is($killed, 1, "$name: the module's backend terminated");
my ($s, $b) = post('/in', ::R('inbound-call_ended'));
is($s, 200, "$name: the next delivery is applied");
like($b, qr/"duplicate":false/, "$name: once");
is(pg_logged(qr/parse retell_[0-9a-f]{8}: SELECT ticket_id/), 2, "$name: prepared again on the new connection");
is(pg_logged(qr/ERROR:.*prepared statement/), 0, "$name: no statement used where it did not exist");
is(db_value(q{SELECT count(*) FROM retell.webhook_events}), 2, "$name: two events");



=== TEST 4: a SQLSTATE that would say "the prepared statement is stale", raised inside the function: the delivery's own error, answered 503 on the same connection, not retried on a new one
A trigger raises 42883 for one call: the function's error, with a
PL/pgSQL context. Closing the connection and sending it again on a new
one would fail the same way, at twice the cost, for every such delivery.
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ] ]
--- error_code: 200
--- db_check
dbh()->do(q{CREATE OR REPLACE FUNCTION public.retell_test_raise() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.call_id = 'call_raises' THEN
                    RAISE EXCEPTION 'no such function, says the trigger' USING ERRCODE = '42883';
                END IF;
                RETURN NEW;
            END $$});
dbh()->do(q{CREATE TRIGGER retell_test_raise BEFORE INSERT ON retell.webhook_events
            FOR EACH ROW EXECUTE FUNCTION public.retell_test_raise()});
my ($s) = post('/in', Retell::with_call_id(::R('inbound-call_started'), 'call_raises'));
is($s, 503, "$name: answered 503");
like(block_log(), qr/apply failed: .*no such function, says the trigger/, "$name: its error in the log");
unlike(block_log(), qr/no longer matches its function/, "$name: not taken for a stale statement");
is(scalar(() = block_log() =~ /retell postgres connected to/g), 1, "$name: one connection all along");
is(pg_logged(qr/no such function, says the trigger/), 1, "$name: run once, not again on a new connection");
dbh()->do(q{DROP TRIGGER retell_test_raise ON retell.webhook_events});
