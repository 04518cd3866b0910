# Retention of raw payloads (issue 20, sql/004_retention.sql,
# tools/retell-prune): applied deliveries past their age and stored
# unrouted ones past theirs become tombstones, the payload gone and the
# digest kept; a late redelivery of a pruned body changes nothing; calls,
# tickets, customers and the outbox are never touched; an interrupted run
# resumes and prunes nothing twice.  Rows are aged by setting received_at.
use lib 't/inc';
use Test::Nginx::Socket 'no_plan';
use Retell;
use JSON::PP ();

sub B { Retell::event_body(@_) }

my $preprocess = db_block_preprocessor();
add_block_preprocessor(sub { $preprocess->(@_) });
add_response_body_check(\&db_check_hook);

no_shuffle();
run_tests();


# tools/retell-prune with these options; returns its output
sub prune {
    my (@opt) = @_;
    my $out = `$Retell::REPO/tools/retell-prune @opt "$Retell::PG" 2>&1`;
    Test::More::is($?, 0, "$::name: retell-prune ran") or Test::More::diag($out);
    return $out;
}

sub age { Retell::dbh()->do(q{UPDATE retell.webhook_events SET received_at = now() - ?::interval WHERE call_id = ?}, undef, $_[1], $_[0]) }

sub others {
    return db_value(q{SELECT (SELECT count(*) FROM retell.calls) || '/' || (SELECT count(*) FROM retell.tickets)
                             || '/' || (SELECT count(*) FROM retell.customers) || '/' || (SELECT count(*) FROM retell.email_outbox)});
}

sub pruned { return db_value(q{SELECT pruned_at IS NOT NULL AND payload IS NULL FROM retell.webhook_events WHERE call_id = ?}, $_[0]) }

__DATA__

=== TEST 1: applied payloads past --applied-age and unrouted ones past --unrouted-age become tombstones; nothing else changes
--- deliveries eval
[ [ '/in', ::B('call_analyzed', 'ret_old', call_analysis => { custom_analysis_data => { action_required => JSON::PP::true() } }) ],
  [ '/in', ::B('call_started', 'ret_young') ],
  [ '/in', ::B('call_started', 'ret_unrouted_40', agent_id => 'agent_unknown') ],
  [ '/in', ::B('call_started', 'ret_unrouted_100', agent_id => 'agent_unknown') ] ]
--- error_code eval
[200, 200, 202, 202]
--- db_check
age('ret_old', '40 days');
age('ret_young', '10 days');
age('ret_unrouted_40', '40 days');
age('ret_unrouted_100', '100 days');
my $before = others();
my $sha = db_value(q{SELECT encode(payload_sha256, 'hex') FROM retell.webhook_events WHERE call_id = 'ret_old'});
like(prune(), qr/retell-prune: 2 payloads pruned/, "$name: two pruned");
ok(pruned('ret_old'), "$name: applied, 40 days: pruned");
ok(!pruned('ret_young'), "$name: applied, 10 days: kept");
ok(!pruned('ret_unrouted_40'), "$name: unrouted, 40 days: kept (its age is 90)");
ok(pruned('ret_unrouted_100'), "$name: unrouted, 100 days: pruned");
is(db_value(q{SELECT encode(payload_sha256, 'hex') || event || endpoint FROM retell.webhook_events WHERE call_id = 'ret_old'}),
   "${sha}call_analyzedinbound", "$name: the digest and the routing kept");
is(others(), $before, "$name: calls, tickets, customers and the outbox untouched");
is(db_value(q{SELECT t.status || '/' || o.reason FROM retell.tickets t JOIN retell.email_outbox o USING (call_id)
              WHERE t.call_id = 'ret_old'}), 'new/action_required', "$name: its ticket and email as they were");
like(prune(), qr/retell-prune: 0 payloads pruned/, "$name: a second run finds nothing");



=== TEST 2: a late redelivery of a pruned body is a duplicate and changes nothing; a pruned unrouted body applied once its agent is mapped gets its payload back
--- deliveries eval
[ [ '/in', ::B('call_analyzed', 'ret_late', call_analysis => { custom_analysis_data => { action_required => JSON::PP::false() } }) ],
  [ '/in', ::B('call_started', 'ret_replay', agent_id => 'agent_later') ] ]
--- error_code eval
[200, 202]
--- db_check
my $late = ::B('call_analyzed', 'ret_late', call_analysis => { custom_analysis_data => { action_required => JSON::PP::false() } });
my $replay = ::B('call_started', 'ret_replay', agent_id => 'agent_later');
age($_, '200 days') for qw(ret_late ret_replay);
prune();
ok(pruned('ret_late') && pruned('ret_replay'), "$name: both pruned");
my $ticket = db_row(q{SELECT status, updated_at FROM retell.tickets WHERE call_id = 'ret_late'});
my ($s, $b) = post('/in', $late);
is($s, 200, "$name: the late redelivery answered 200");
like($b, qr/"duplicate":true/, "$name: as a duplicate");
is_deeply(db_row(q{SELECT status, updated_at FROM retell.tickets WHERE call_id = 'ret_late'}), $ticket, "$name: the ticket unchanged");
is(db_value(q{SELECT count(*) FROM retell.webhook_events WHERE call_id = 'ret_late'}), 1, "$name: no new event row");
ok(pruned('ret_late'), "$name: still a tombstone");
Retell::dbh()->do(q{INSERT INTO retell.agents VALUES ('agent_later', 1)});
($s, $b) = post('/in', $replay);
is($s, 200, "$name: the unrouted body applied once its agent is mapped");
like($b, qr/"duplicate":false/, "$name: applied, not a duplicate");
ok(!pruned('ret_replay'), "$name: its payload back");
is(db_value(q{SELECT payload->'call'->>'call_id' FROM retell.webhook_events WHERE call_id = 'ret_replay'}), 'ret_replay', "$name: the body stored");



=== TEST 3: interrupted after two batches, the next run resumes: each payload pruned once
--- deliveries eval
[ map { [ '/in', ::B('call_started', "ret_batch_$_", from_number => sprintf('+1415555%04d', 5000 + $_)) ] } 1 .. 7 ]
--- error_code eval
[ (200) x 7 ]
--- db_check
age("ret_batch_$_", '60 days') for 1 .. 7;
like(prune('--batch', 2, '--max-batches', 2), qr/4 payloads pruned in 2 batches/, "$name: interrupted after two batches");
is(db_value(q{SELECT count(*) FROM retell.webhook_events WHERE pruned_at IS NOT NULL}), 4, "$name: four pruned");
my $first = db_value(q{SELECT string_agg(pruned_at::text, ',' ORDER BY id) FROM retell.webhook_events WHERE pruned_at IS NOT NULL});
like(prune('--batch', 2), qr/3 payloads pruned/, "$name: the next run prunes the rest");
is(db_value(q{SELECT count(*) FROM retell.webhook_events WHERE pruned_at IS NOT NULL AND payload IS NULL}), 7, "$name: all seven pruned");
is(db_value(q{SELECT string_agg(pruned_at::text, ',' ORDER BY id) FROM retell.webhook_events WHERE pruned_at IS NOT NULL AND id IN
              (SELECT id FROM retell.webhook_events ORDER BY id LIMIT 4)}), $first, "$name: the first four not pruned again");
