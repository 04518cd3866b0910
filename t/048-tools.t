# The operator tools beside 045 and 047 (tools/retell-prune,
# tools/retell-replay, tools/retell-send), from a review that found each
# of TESTs 1-3, 6 and 7 failing: a bounded prune resumes, replay --agent
# reports the agent's pruned rows, retell-send's exit status says whether
# the endpoint took the delivery, replay --db takes any libpq connection
# string, and a replay names and marks the company the call went to.
# TESTs 4 and 5 hold the replay's races: two runs at once with the
# original redelivered meanwhile, and a run interrupted after its POST.
use lib 't/inc';
use Test::Nginx::Socket 'no_plan';
use Retell;
use JSON::PP ();
use File::Temp ();

sub B { Retell::event_body(@_) }

my $preprocess = db_block_preprocessor();
add_block_preprocessor(sub { $preprocess->(@_) });
add_response_body_check(\&db_check_hook);

no_shuffle();
run_tests();


sub prune {
    my (@opt) = @_;
    my $out = `$Retell::REPO/tools/retell-prune @opt "$Retell::PG" 2>&1`;
    Test::More::is($?, 0, "$::name: retell-prune ran") or Test::More::diag($out);
    return $out;
}

sub replay {
    my (@opt) = @_;
    my $port = $ENV{TEST_NGINX_SERVER_PORT} // $ENV{TEST_NGINX_PORT} // 1984;
    return scalar `$Retell::REPO/tools/retell-replay --db "$Retell::PG" --url http://127.0.0.1:$port --inbound-path /in --outbound-path /out --secret $Retell::SECRET --rate 50 @opt 2>&1`;
}

__DATA__

=== TEST 1: retell-prune --max-batches: the next run with the same options resumes and prunes the rest (README: "interrupted, the next run resumes")
--- deliveries eval
[ map { [ '/in', ::B('call_started', "rev_batch_$_", from_number => sprintf('+1415555%04d', 6000 + $_)) ] } 1 .. 7 ]
--- error_code eval
[ (200) x 7 ]
--- db_check
Retell::dbh()->do(q{UPDATE retell.webhook_events SET received_at = now() - interval '60 days'});
like(prune('--batch', 2, '--max-batches', 2), qr/4 payloads pruned in 2 batches/, "$name: first run, bounded: four pruned");
my $second = prune('--batch', 2, '--max-batches', 2);
like($second, qr/retell-prune: 3 payloads pruned/, "$name: second run, same options: the remaining three pruned");
is(db_value(q{SELECT count(*) FROM retell.webhook_events WHERE pruned_at IS NULL}), 0, "$name: nothing left unpruned");



=== TEST 2: retell-replay --agent (the README's own invocation) reports a pruned row of that agent as expired
--- deliveries eval
[ [ '/in', ::B('call_started', 'rev_expired', agent_id => 'agent_mapped_later') ] ]
--- error_code: 202
--- db_check
Retell::dbh()->do(q{UPDATE retell.webhook_events SET received_at = now() - interval '200 days'});
prune();
Retell::dbh()->do(q{INSERT INTO retell.agents VALUES ('agent_mapped_later', 1)});
my $all = replay();
like($all, qr/1 expired/, "$name: without --agent: reported expired");
my $out = replay('--agent', 'agent_mapped_later');
like($out, qr/1 expired/, "$name: with --agent agent_mapped_later: reported expired too");
like($out, qr/its agent unknown now/, "$name: and why it is listed");



=== TEST 3: retell-send exits non-zero when the endpoint refuses the delivery (401, wrong key)
--- deliveries eval
[ [ '/in', ::B('call_started', 'rev_send_ok') ] ]
--- error_code: 200
--- db_check
my $port = $ENV{TEST_NGINX_SERVER_PORT} // $ENV{TEST_NGINX_PORT} // 1984;
my $f = File::Temp->new(SUFFIX => '.json');
print {$f} ::B('call_started', 'rev_send');
close $f;
my $out = `$Retell::REPO/tools/retell-send --secret wrong-key --url http://127.0.0.1:$port/in $f 2>&1`;
my $rc = $? >> 8;
like($out, qr{^HTTP/1\.\d 401}, "$name: answered 401");
isnt($rc, 0, "$name: retell-send exit status is not 0 on a 401") or diag($out);
`$Retell::REPO/tools/retell-send --secret $Retell::SECRET --url http://127.0.0.1:$port/in $f 2>&1`;
is($? >> 8, 0, "$name: and 0 when the endpoint took it");



=== TEST 4: two replays at once and the original redelivered meanwhile: one ticket, one email, every stored row marked once
--- deliveries eval
[ [ '/in', ::B('call_started', 'rev_race', agent_id => 'agent_race') ],
  [ '/in', ::B('call_analyzed', 'rev_race', agent_id => 'agent_race', call_analysis => { custom_analysis_data => { action_required => JSON::PP::true() } }) ] ]
--- error_code eval
[202, 202]
--- db_check
Retell::dbh()->do(q{INSERT INTO retell.agents VALUES ('agent_race', 1)});
my $port = $ENV{TEST_NGINX_SERVER_PORT} // $ENV{TEST_NGINX_PORT} // 1984;
my @pids;
for my $i (1 .. 2) {
    my $pid = fork // die;
    if (!$pid) {
        exec "$Retell::REPO/tools/retell-replay --db '$Retell::PG' --url http://127.0.0.1:$port --inbound-path /in --outbound-path /out --secret $Retell::SECRET --rate 5 --apply > /dev/null 2>&1";
    }
    push @pids, $pid;
}
my ($s) = post('/in', ::B('call_analyzed', 'rev_race', agent_id => 'agent_race', call_analysis => { custom_analysis_data => { action_required => JSON::PP::true() } }));
waitpid $_, 0 for @pids;
is(db_value(q{SELECT count(*) FROM retell.tickets WHERE call_id = 'rev_race'}), 1, "$name: one ticket");
is(db_value(q{SELECT count(*) FROM retell.email_outbox WHERE call_id = 'rev_race'}), 1, "$name: one email");
is(db_value(q{SELECT count(*) FROM retell.webhook_events WHERE company_id IS NULL OR applied_at IS NULL}), 0, "$name: nothing left unrouted");
like(replay(), qr/0 stored unrouted deliveries/, "$name: nothing listed again");



=== TEST 5: a replay interrupted after its POST, before marking the row: the next run marks it, nothing applied twice
--- deliveries eval
[ [ '/in', ::B('call_analyzed', 'rev_int', agent_id => 'agent_int', call_analysis => { custom_analysis_data => { action_required => JSON::PP::true() } }) ] ]
--- error_code: 202
--- db_check
Retell::dbh()->do(q{INSERT INTO retell.agents VALUES ('agent_int', 1)});
my $text = db_value(q{SELECT payload::text FROM retell.webhook_events WHERE call_id = 'rev_int'});
utf8::encode($text) if utf8::is_utf8($text);
my ($s, $b) = post('/in', $text);
is($s, 200, "$name: the first run's POST applied");
like(replay('--apply'), qr/1 replayed, 0 still unrouted, 0 expired, 0 failed/, "$name: the next run sends it again and marks the row");
is(db_value(q{SELECT count(*) FROM retell.webhook_events WHERE call_id = 'rev_int'}), 2, "$name: the stored row and one replayed row");
is(db_value(q{SELECT count(*) FROM retell.email_outbox WHERE call_id = 'rev_int'}), 1, "$name: one email");



=== TEST 6: retell-replay --db takes a libpq conninfo with a quoted value (as t/040 gives tools/migrate), and a URI
--- deliveries eval
[ [ '/in', ::B('call_started', 'rev_conninfo', agent_id => 'agent_unmapped') ] ]
--- error_code: 202
--- db_check
my $out = `$Retell::REPO/tools/retell-replay --db "$Retell::PG options='-c statement_timeout=5000'" 2>&1`;
is($? >> 8, 0, "$name: exit status 0") or diag($out);
like($out, qr/1 stored unrouted delivery/, "$name: the row listed");
my $uri = "postgresql://postgres\@127.0.0.1:$ENV{TEST_NGINX_PG_PORT}/retell_test";
$out = `$Retell::REPO/tools/retell-replay --db "$uri" 2>&1`;
is($? >> 8, 0, "$name: a URI: exit status 0") or diag($out);
like($out, qr/1 stored unrouted delivery/, "$name: a URI: the row listed");
$out = `$Retell::REPO/tools/retell-replay --db "host=127.0.0.1 port=1 user=postgres password=s3cret dbname=x" 2>&1`;
isnt($? >> 8, 0, "$name: no server: exit status not 0");
unlike($out, qr/s3cret/, "$name: the error does not show the password");



=== TEST 7: the dry run says, and the stored row is marked with, the company the replayed body routes to (the call's, once known)
--- deliveries eval
[ [ '/in', ::B('call_started', 'rev_co', agent_id => 'agent_co') ] ]
--- error_code: 202
--- db_check
# the call became known under company 2 meanwhile (another event of it routed by a location's retell_company)
Retell::dbh()->do(q{INSERT INTO retell.calls (call_id, company_id, direction) VALUES ('rev_co', 2, 'inbound')});
Retell::dbh()->do(q{INSERT INTO retell.agents VALUES ('agent_co', 1)});
my $dry = replay();
replay('--apply');
my $routed = db_value(q{SELECT company_id FROM retell.webhook_events WHERE call_id = 'rev_co' AND replayed_at IS NULL AND applied_at IS NOT NULL});
is($routed, 2, "$name: the replayed body routed to the call's company");
is(db_value(q{SELECT company_id FROM retell.webhook_events WHERE call_id = 'rev_co' AND replayed_at IS NOT NULL}), $routed,
   "$name: the stored row marked applied by that company (decisions.md: 'applied by the company the new one routed to')");
like($dry, qr/would route to company 2/, "$name: the dry run said company 2");



=== TEST 8: tools/migrate behind a long transaction on what it replaces: it gives up at its lock_timeout, changing nothing, rather than hold up what queues behind it; applied again once the lock is gone
--- deliveries eval
[ [ '/in', ::B('call_started', 'rev_migrate') ] ]
--- error_code: 200
--- db_check
my $reader = Retell::lock_rows(q{SELECT count(*) FROM retell.call_records});
my $out = `PGOPTIONS='-c lock_timeout=300ms' timeout 30 $Retell::REPO/tools/migrate "$Retell::PG" 2>&1`;
my $rc = $? >> 8;
isnt($rc, 0, "$name: the migration failed");
isnt($rc, 124, "$name: by itself, not killed by timeout(1)");
like($out, qr/lock timeout/, "$name: at its lock_timeout");
$reader->rollback;
$out = `$Retell::REPO/tools/migrate "$Retell::PG" 2>&1`;
is($? >> 8, 0, "$name: applied once the lock is gone") or diag($out);
is(db_value(q{SELECT count(*) FROM retell.call_records WHERE call_id = 'rev_migrate'}), 1, "$name: nothing lost");
