# Caller context (issue 21): Retell's inbound call webhook answered with
# who is calling and what is already open, from the tables the call
# webhooks fill; routing by agent, by the number called, by
# retell_company; failing open with 200 and no variables when the
# database cannot answer within retell_call_inbound_timeout; nothing
# stored; and later call events linked to the customer by the answer's
# metadata.
#
# Sections of this file, beside Retell.pm's:
#   --- db_setup         SQL run after the database is reset, before the
#                        requests (one statement per line ending in ";")
#   --- hold_lock        SQL another session runs first and holds until
#                        the last answer is read
#   --- postgres         "refused" (nothing listens) or "blackhole"
#                        (connects hang): retell_postgres points there
#   --- caller_answer eval   the last answer, decoded; qr// for values
#                        that vary (times, ids)
#   --- same_answers     every answer of the block is the same bytes
# Every answer of a call_inbound location that is 200 must be JSON whose
# dynamic variables are all strings.
use lib 't/inc';
use Test::Nginx::Socket 'no_plan';
use Retell;
use Faults;
use JSON::PP ();

sub R { Retell::sample(@_) }
sub B { Retell::event_body(@_) }

# a call_inbound body: CI(from => ..., to => ..., agent_id => ..., call_id => ...)
sub CI {
    my (%f) = @_;
    my %ci = (from_number => '+14155550134', to_number => '+14155550100', %f);
    delete $ci{$_} for grep { !defined $ci{$_} } keys %ci;
    return JSON::PP->new->canonical->encode({ event => 'call_inbound', call_inbound => \%ci });
}

our $hole = blackhole_start();
our ($pg_port) = $Retell::PG =~ /port=(\d+)/;
our $refused = $pg_port + 9;
our $locker;

my $ci = sub {
    my ($path, $extra) = @_;
    return <<"_EOC_";
location = $path {
    retell_webhook call_inbound;
    retell_webhook_secret $Retell::SECRET;
    add_header X-Retell-Endpoint \$retell_endpoint always;
    add_header X-Retell-Outcome \$retell_outcome always;
    add_header X-Retell-Call \$retell_call_id always;
    add_header X-Retell-Ticket \$retell_ticket_id always;
    $extra
}
_EOC_
};

my $preprocess = db_block_preprocessor(
    http_config => sub { Retell::pg_http_config() },
    config => sub {
        webhook_locations()
        . $ci->('/ci', 'retell_call_inbound_timeout 300ms;')
        . $ci->('/ci_fallback', 'retell_company 3;')
        . $ci->('/ci_small', 'client_max_body_size 10;')
        . "location = /metrics { retell_metrics; }\n";
    },
    each => sub {
        my ($block) = @_;
        $locker->rollback if $locker;
        undef $locker;
        if (my $sql = $block->db_setup) {
            dbh()->do($_) for grep { /\S/ } split /;\s*\n/, $sql;
        }
        if (my $sql = $block->hold_lock) {
            $locker = lock_rows($sql);
        }
        if (my $pg = $block->postgres) {
            $pg =~ s/\s+$//;
            my $port = $pg eq 'blackhole' ? $hole : $refused;
            $block->set_value(http_config =>
                qq{retell_postgres "host=127.0.0.1 port=$port user=postgres dbname=x connect_timeout=5";\n}
                . "client_body_buffer_size 30m;\n");
        }
    });
add_block_preprocessor(sub { $preprocess->(@_) });

our @answers;
add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated, $dry_run) = @_;
    return if $dry_run;
    my $reqs = ref $block->request ? $block->request : [ $block->request ];
    my $n = @$reqs;
    my $name = $block->name;
    @answers = () if $req_idx == 0;
    push @answers, $body;
    my ($path) = $reqs->[$req_idx] =~ m{^\w+ (\S+)};
    if ($path =~ m{^/ci} && $body =~ /^\{"call_inbound"/) {
        my $json = eval { JSON::PP->new->utf8->decode($body) };
        Test::More::ok($json, "$name: answer $req_idx is JSON") or Test::More::diag($body);
        my $vars = $json ? $json->{call_inbound}{dynamic_variables} : undef;
        Test::More::ok(ref $vars eq 'HASH' && !grep { !is_string($_) } values %$vars,
                       "$name: answer $req_idx: every variable a string");
    }
    return if $req_idx != $n - 1;
    if (defined(my $want = $block->caller_answer)) {
        my $got = JSON::PP->new->utf8->decode($body);
        my @diff = differences($got, $want, '');
        Test::More::ok(!@diff, "$name: the answer") or Test::More::diag(join "\n", @diff, $body);
    }
    if ($block->same_answers) {
        Test::More::ok(@answers == $n && !grep { $_ ne $answers[0] } @answers,
                       "$name: the same answer each time") or Test::More::diag(join "\n", @answers);
    }
    if ($locker) {
        $locker->rollback;
        undef $locker;
    }
});
add_response_body_check(\&db_check_hook);

no_shuffle();
run_tests();


# a JSON string, not a number or a boolean decoded into Perl
sub is_string {
    my ($v) = @_;
    return 0 if !defined $v || ref $v;
    my $b = B::svref_2object(\$v);
    return $b->FLAGS & B::SVf_POK() && !($b->FLAGS & (B::SVf_IOK() | B::SVf_NOK()));
}
use B ();

# where $got differs from $want (qr// in $want: a match)
sub differences {
    my ($got, $want, $at) = @_;
    if (ref $want eq 'Regexp') {
        return (defined $got && !ref $got && $got =~ $want) ? () : ("$at: " . ($got // 'undef') . " !~ $want");
    }
    if (ref $want eq 'HASH') {
        return ("$at: not an object") unless ref $got eq 'HASH';
        my %k = map { $_ => 1 } keys %$got, keys %$want;
        return map { exists $want->{$_} && exists $got->{$_}
                     ? differences($got->{$_}, $want->{$_}, "$at.$_")
                     : ("$at.$_: " . (exists $want->{$_} ? 'missing' : 'unexpected')) } sort keys %k;
    }
    if (ref $want eq 'ARRAY') {
        return ("$at: not an array of " . @$want) unless ref $got eq 'ARRAY' && @$got == @$want;
        return map { differences($got->[$_], $want->[$_], "$at\[$_]") } 0 .. $#$want;
    }
    return (defined $got && !ref $got && $got eq $want) ? () : ("$at: " . ($got // 'undef') . " ne $want");
}

sub counts {
    return join ' ', map { db_value("SELECT count(*) FROM retell.$_") }
        qw(webhook_events calls customers tickets email_outbox);
}

__DATA__

=== TEST 1: a known caller with an open ticket: name, phone, company, the ticket and its call's summary; the metadata; nothing stored
--- deliveries eval
[ [ '/in', ::R('inbound-call_analyzed-action_required') ],
  [ '/ci', ::CI(agent_id => 'agent_8a1b2c3d4e5f60718293a4b5', call_id => 'call_ring_1') ] ]
--- error_code eval
[200, 200]
--- response_headers_like eval
[ "Content-Type: application/json",
  "X-Retell-Endpoint: call_inbound\nX-Retell-Outcome: applied\nX-Retell-Call: call_ring_1\nX-Retell-Ticket: \\d+" ]
--- caller_answer eval
{ call_inbound => {
    dynamic_variables => {
        customer_known => 'true', customer_name => 'Dana Whitfield',
        customer_phone => '(415) 555-0134', company_name => 'Parkview',
        open_ticket_count => '1', last_call_at => qr/^\d{4}-\d\d-\d\d \d\d:\d\d UTC$/,
        open_ticket_id => qr/^\d+$/, open_ticket_status => 'new',
        open_ticket_age => '0 minutes',
        open_ticket_summary => qr/^Tenant Dana Whitfield reported a slow leak under t.*[^\x{2026}]$/ },
    metadata => { retell_customer_id => qr/^\d+$/, retell_open_ticket_ids => [ qr/^\d+$/ ] } } }
--- db_check
my $a = JSON::PP::decode_json($::body);
my $t = db_row('SELECT t.id, t.customer_id, c.call_summary FROM retell.tickets t JOIN retell.calls c USING (call_id)');
is($a->{call_inbound}{dynamic_variables}{open_ticket_id}, $t->{id}, "$name: the ticket's id");
is($a->{call_inbound}{metadata}{retell_customer_id}, $t->{customer_id}, "$name: the customer's id");
is($a->{call_inbound}{metadata}{retell_open_ticket_ids}[0], $t->{id}, "$name: the open ticket's id");
is($a->{call_inbound}{dynamic_variables}{open_ticket_summary}, $t->{call_summary}, "$name: the whole summary");
is(::counts(), '1 1 1 1 1', "$name: nothing stored for the call_inbound");



=== TEST 2: a known caller whose tickets are all closed or resolved: no open ticket, the last call's time
--- db_setup
INSERT INTO retell.customers (company_id, phone_e164, phone_raw, phone_display, name) VALUES (1, '+14155550134', '+14155550134', '(415) 555-0134', 'Dana Whitfield');
INSERT INTO retell.calls (call_id, company_id, customer_id, direction, started_at, call_summary) VALUES ('c1', 1, 1, 'inbound', '2026-01-02 03:04:05+00', 'Old leak'), ('c2', 1, 1, 'inbound', '2026-03-04 05:06:07+00', 'Old noise');
INSERT INTO retell.tickets (company_id, customer_id, call_id, status) VALUES (1, 1, 'c1', 'closed'), (1, 1, 'c2', 'resolved');
--- deliveries eval
[ [ '/ci', ::CI(agent_id => 'agent_8a1b2c3d4e5f60718293a4b5') ] ]
--- error_code: 200
--- response_headers_like
X-Retell-Outcome: applied
--- caller_answer eval
{ call_inbound => {
    dynamic_variables => {
        customer_known => 'true', customer_name => 'Dana Whitfield',
        customer_phone => '(415) 555-0134', company_name => 'Parkview',
        open_ticket_count => '0', last_call_at => '2026-03-04 05:06 UTC' },
    metadata => { retell_customer_id => 1, retell_open_ticket_ids => [] } } }



=== TEST 3: several open tickets: the most recent one's, its age in words, a long summary cut at 300 characters; no name stored is ""
--- db_setup
INSERT INTO retell.customers (company_id, phone_e164, phone_raw, phone_display) VALUES (1, '+14155550134', '+14155550134', '(415) 555-0134');
INSERT INTO retell.calls (call_id, company_id, customer_id, direction, started_at, call_summary) VALUES ('c1', 1, 1, 'inbound', now() - interval '9 days', 'First'), ('c2', 1, 1, 'inbound', now() - interval '3 days', repeat(E'\u00e9', 299) || 'xy'), ('c3', 1, 1, 'inbound', now() - interval '1 day', 'Done');
INSERT INTO retell.tickets (company_id, customer_id, call_id, status, created_at) VALUES (1, 1, 'c1', 'contacted', now() - interval '9 days'), (1, 1, 'c2', 'qualified', now() - interval '3 days 1 hour'), (1, 1, 'c3', 'closed', now() - interval '1 day');
--- deliveries eval
[ [ '/ci', ::CI(agent_id => 'agent_8a1b2c3d4e5f60718293a4b5') ] ]
--- error_code: 200
--- caller_answer eval
{ call_inbound => {
    dynamic_variables => {
        customer_known => 'true', customer_name => '',
        customer_phone => '(415) 555-0134', company_name => 'Parkview',
        open_ticket_count => '2', last_call_at => qr/^\d{4}-\d\d-\d\d \d\d:\d\d UTC$/,
        open_ticket_id => '2', open_ticket_status => 'qualified',
        open_ticket_age => '3 days', open_ticket_summary => ("\x{e9}" x 299) . "\x{2026}" },
    metadata => { retell_customer_id => 1, retell_open_ticket_ids => [ 2, 1 ] } } }



=== TEST 4: an unknown caller: known false, the company's name, nothing personal
--- deliveries eval
[ [ '/in', ::R('inbound-call_analyzed-action_required') ],
  [ '/ci', ::CI(agent_id => 'agent_8a1b2c3d4e5f60718293a4b5', from_number => '+14155559999') ] ]
--- error_code eval
[200, 200]
--- response_headers_like eval
[ "Content-Type: application/json", "X-Retell-Outcome: applied" ]
--- caller_answer eval
{ call_inbound => { dynamic_variables => { customer_known => 'false', company_name => 'Parkview' } } }



=== TEST 5: an anonymous caller, and one whose number is unusable: unknown
--- db_setup
INSERT INTO retell.customers (company_id, phone_e164, phone_raw, phone_display, name) VALUES (1, '+14155550134', 'anonymous', 'anonymous', 'Somebody');
--- deliveries eval
[ [ '/ci', ::CI(agent_id => 'agent_8a1b2c3d4e5f60718293a4b5', from_number => 'anonymous') ],
  [ '/ci', ::CI(agent_id => 'agent_8a1b2c3d4e5f60718293a4b5', from_number => '12') ],
  [ '/ci', ::CI(agent_id => 'agent_8a1b2c3d4e5f60718293a4b5', from_number => undef) ] ]
--- error_code eval
[200, 200, 200]
--- same_answers
--- caller_answer eval
{ call_inbound => { dynamic_variables => { customer_known => 'false', company_name => 'Parkview' } } }



=== TEST 6: routing by agent: the agent's company, and that company's customer with the number
--- db_setup
INSERT INTO retell.customers (company_id, phone_e164, phone_raw, phone_display, name) VALUES (1, '+14155550134', 'x', '(415) 555-0134', 'Dana at Parkview'), (2, '+14155550134', 'x', '(415) 555-0134', 'Dana at Quiet');
INSERT INTO retell.company_numbers VALUES ('+14155550100', 1);
--- deliveries eval
[ [ '/ci', ::CI(agent_id => 'agent_quiet') ] ]
--- error_code: 200
--- caller_answer eval
{ call_inbound => {
    dynamic_variables => {
        customer_known => 'true', customer_name => 'Dana at Quiet',
        customer_phone => '(415) 555-0134', company_name => 'Quiet',
        open_ticket_count => '0', last_call_at => '' },
    metadata => { retell_customer_id => 2, retell_open_ticket_ids => [] } } }



=== TEST 7: routing by the number called, when the agent is absent or unknown; the number in any form Retell sends
--- db_setup
INSERT INTO retell.customers (company_id, phone_e164, phone_raw, phone_display, name) VALUES (1, '+14155550134', 'x', '(415) 555-0134', 'Dana at Parkview'), (2, '+14155550134', 'x', '(415) 555-0134', 'Dana at Quiet');
INSERT INTO retell.company_numbers VALUES ('+14155550100', 2);
--- deliveries eval
[ [ '/ci', ::CI() ],
  [ '/ci', ::CI(agent_id => 'agent_nowhere') ],
  [ '/ci', ::CI(to_number => '(415) 555-0100') ] ]
--- error_code eval
[200, 200, 200]
--- same_answers
--- caller_answer eval
{ call_inbound => {
    dynamic_variables => {
        customer_known => 'true', customer_name => 'Dana at Quiet',
        customer_phone => '(415) 555-0134', company_name => 'Quiet',
        open_ticket_count => '0', last_call_at => '' },
    metadata => { retell_customer_id => 2, retell_open_ticket_ids => [] } } }



=== TEST 8: routing by the location's retell_company when neither agent nor number is known
--- db_setup
INSERT INTO retell.customers (company_id, phone_e164, phone_raw, phone_display, name) VALUES (3, '+14155550134', 'x', '(415) 555-0134', 'Dana at Nobody');
--- deliveries eval
[ [ '/ci_fallback', ::CI(agent_id => 'agent_nowhere', to_number => '+14155557777') ] ]
--- error_code: 200
--- caller_answer eval
{ call_inbound => {
    dynamic_variables => {
        customer_known => 'true', customer_name => 'Dana at Nobody',
        customer_phone => '(415) 555-0134', company_name => 'Nobody',
        open_ticket_count => '0', last_call_at => '' },
    metadata => { retell_customer_id => 1, retell_open_ticket_ids => [] } } }



=== TEST 9: no company at all: no variables, "unrouted"
--- db_setup
INSERT INTO retell.customers (company_id, phone_e164, phone_raw, phone_display, name) VALUES (1, '+14155550134', 'x', '(415) 555-0134', 'Dana');
--- deliveries eval
[ [ '/ci', ::CI(agent_id => 'agent_nowhere', to_number => '+14155557777') ] ]
--- error_code: 200
--- response_headers_like
X-Retell-Outcome: unrouted
--- response_body
{"call_inbound":{"dynamic_variables":{}}}



=== TEST 10: Retell's retry of the same call_id gets the same answer
--- deliveries eval
[ [ '/in', ::R('inbound-call_analyzed-action_required') ],
  [ '/ci', ::CI(agent_id => 'agent_8a1b2c3d4e5f60718293a4b5', call_id => 'call_retry') ],
  [ '/ci', ::CI(agent_id => 'agent_8a1b2c3d4e5f60718293a4b5', call_id => 'call_retry') ] ]
--- error_code eval
[200, 200, 200]
--- db_check
is($::answers[1], $::answers[2], "$name: the retry's answer is the first's");
like($::answers[2], qr/"customer_known":"true"/, "$name: a known caller's");



=== TEST 11: PostgreSQL refusing connections: 200 with no variables at once, logged at warn
--- postgres: refused
--- deliveries eval
[ [ '/ci', ::CI(agent_id => 'agent_8a1b2c3d4e5f60718293a4b5', call_id => 'call_down') ] ]
--- error_code: 200
--- timeout: 2
--- response_headers_like
X-Retell-Outcome: unavailable
X-Retell-Call: call_down
--- response_body
{"call_inbound":{"dynamic_variables":{}}}
--- error_log eval
qr/\[warn\] .*retell call_inbound "call_down": .*, answering without the caller's context/



=== TEST 12: PostgreSQL not answering (connects hang): 200 with no variables within the budget
--- postgres: blackhole
--- deliveries eval
[ [ '/ci', ::CI(agent_id => 'agent_8a1b2c3d4e5f60718293a4b5', call_id => 'call_hang') ] ]
--- error_code: 200
--- timeout: 2
--- response_headers_like
X-Retell-Outcome: unavailable
--- response_body
{"call_inbound":{"dynamic_variables":{}}}
--- error_log eval
qr/\[warn\] .*retell call_inbound "call_hang": .*, answering without the caller's context/



=== TEST 13: a row lock held on the customer: a read does not wait for it, the answer is whole
--- db_setup
INSERT INTO retell.customers (company_id, phone_e164, phone_raw, phone_display, name) VALUES (1, '+14155550134', 'x', '(415) 555-0134', 'Dana');
--- hold_lock
SELECT 1 FROM retell.customers FOR UPDATE
--- deliveries eval
[ [ '/ci', ::CI(agent_id => 'agent_8a1b2c3d4e5f60718293a4b5') ] ]
--- error_code: 200
--- timeout: 2
--- response_headers_like
X-Retell-Outcome: applied
--- caller_answer eval
{ call_inbound => {
    dynamic_variables => {
        customer_known => 'true', customer_name => 'Dana',
        customer_phone => '(415) 555-0134', company_name => 'Parkview',
        open_ticket_count => '0', last_call_at => '' },
    metadata => { retell_customer_id => 1, retell_open_ticket_ids => [] } } }



=== TEST 14: the customers table locked (a migration's ACCESS EXCLUSIVE): 200 with no variables within the budget, and the next call answered once it is free
--- db_setup
INSERT INTO retell.customers (company_id, phone_e164, phone_raw, phone_display, name) VALUES (1, '+14155550134', 'x', '(415) 555-0134', 'Dana');
--- hold_lock
LOCK TABLE retell.customers IN ACCESS EXCLUSIVE MODE
--- deliveries eval
[ [ '/ci', ::CI(agent_id => 'agent_8a1b2c3d4e5f60718293a4b5', call_id => 'call_locked') ] ]
--- error_code: 200
--- timeout: 2
--- response_headers_like
X-Retell-Outcome: unavailable
--- response_body
{"call_inbound":{"dynamic_variables":{}}}
--- error_log eval
qr/\[warn\] .*retell call_inbound "call_locked": .*, answering without the caller's context/
--- db_check
my ($s, $b) = post('/ci', ::CI(agent_id => 'agent_8a1b2c3d4e5f60718293a4b5'));
is($s, 200, "$name: answered after the lock");
like($b, qr/"customer_name":"Dana"/, "$name: with the caller's context");



=== TEST 15: refused as the call endpoints refuse: a bad signature, another event, not JSON, no call_inbound object
--- deliveries eval
[ [ '/ci', ::CI(), secret => 'another-key' ],
  [ '/ci', ::R('inbound-call_started') ],
  [ '/ci', 'not json' ],
  [ '/ci', '{"event":"call_inbound","call_inbound":"+14155550134"}' ] ]
--- error_code eval
[401, 400, 400, 400]
--- response_body_like eval
[ qr/"error":"invalid_signature"/,
  qr/"message":"event \\"call_started\\" is not call_inbound"/,
  qr/"message":"the body is not a JSON object"/,
  qr/"message":"\\"call_inbound\\" is missing or not an object"/ ]
--- db_check
is(::counts(), '0 0 0 0 0', "$name: nothing stored");



=== TEST 16: only POST, and nginx's body limit
--- request eval
[ "GET /ci", "POST /ci_small\n" . ::CI() ]
--- more_headers eval
[ "", Retell::signed_headers(::CI()) ]
--- error_code eval
[405, 413]
--- response_headers_like eval
[ "Allow: POST\nX-Retell-Outcome: bad_request", "X-Retell-Outcome: too_large" ]



=== TEST 17: a call_inbound sent to a call endpoint is acknowledged, nothing stored
--- deliveries eval
[ [ '/in', ::CI(agent_id => 'agent_8a1b2c3d4e5f60718293a4b5') ],
  [ '/out', ::CI() ] ]
--- error_code eval
[204, 204]
--- db_check
is(::counts(), '0 0 0 0 0', "$name: nothing stored");



=== TEST 18: names and summaries with quotes, backslashes, line ends and other scripts are JSON strings
--- db_setup
INSERT INTO retell.customers (company_id, phone_e164, phone_raw, phone_display, name) VALUES (1, '+14155550134', 'x', '(415) 555-0134', E'Dana "D" \\ O''Neil\n\t\u65e5\u672c');
INSERT INTO retell.calls (call_id, company_id, customer_id, direction, call_summary) VALUES ('c1', 1, 1, 'inbound', E'Leak\r\n"urgent"\u0001');
INSERT INTO retell.tickets (company_id, customer_id, call_id, status) VALUES (1, 1, 'c1', 'new');
--- deliveries eval
[ [ '/ci', ::CI(agent_id => 'agent_8a1b2c3d4e5f60718293a4b5') ] ]
--- error_code: 200
--- caller_answer eval
{ call_inbound => {
    dynamic_variables => {
        customer_known => 'true', customer_name => qq{Dana "D" \\ O'Neil\n\t\x{65e5}\x{672c}},
        customer_phone => '(415) 555-0134', company_name => 'Parkview',
        open_ticket_count => '1', last_call_at => qr/ UTC$/,
        open_ticket_id => '1', open_ticket_status => 'new',
        open_ticket_age => '0 minutes', open_ticket_summary => qq{Leak\r\n"urgent"\x01} },
    metadata => { retell_customer_id => 1, retell_open_ticket_ids => [ 1 ] } } }



=== TEST 19: a call that carried the answer's metadata is its customer's without a match by phone; metadata naming another company's customer, or none, falls back to the phone
--- db_setup
INSERT INTO retell.customers (company_id, phone_e164, phone_raw, phone_display, name) VALUES (1, '+15105550148', 'x', '(510) 555-0148', 'Linked'), (2, '+15105550149', 'x', '(510) 555-0149', 'Elsewhere');
--- deliveries eval
[ [ '/in', ::B('call_started', 'call_linked', metadata => { retell_customer_id => 1, retell_open_ticket_ids => [] }) ],
  [ '/in', ::B('call_ended', 'call_linked', metadata => { retell_customer_id => 1, retell_open_ticket_ids => [] }) ],
  [ '/in', ::B('call_started', 'call_other', metadata => { retell_customer_id => 2 }) ],
  [ '/in', ::B('call_started', 'call_odd', metadata => { retell_customer_id => '1; DROP TABLE x' }) ] ]
--- error_code eval
[200, 200, 200, 200]
--- db_check
is(db_value(q{SELECT customer_id FROM retell.calls WHERE call_id = 'call_linked'}), 1, "$name: linked by the metadata");
is(db_value(q{SELECT customer_id FROM retell.tickets WHERE call_id = 'call_linked'}), 1, "$name: its ticket too");
my $dana = db_value(q{SELECT id FROM retell.customers WHERE phone_e164 = '+14155550134'});
ok($dana && $dana > 2, "$name: the phone's customer made for the others");
is(db_value(q{SELECT customer_id FROM retell.calls WHERE call_id = 'call_other'}), $dana, "$name: another company's customer: by phone");
is(db_value(q{SELECT customer_id FROM retell.calls WHERE call_id = 'call_odd'}), $dana, "$name: not an id: by phone");
is(db_value(q{SELECT count(*) FROM retell.customers}), 3, "$name: no customer made for the linked call");



=== TEST 20: the metrics count the endpoint as call_inbound, each answer by its outcome
--- request eval
[ "POST /ci\n" . ::CI(agent_id => 'agent_8a1b2c3d4e5f60718293a4b5'),
  "POST /ci\n" . ::CI(agent_id => 'agent_8a1b2c3d4e5f60718293a4b5', from_number => '+14155559999'),
  "POST /ci\n" . ::CI(agent_id => 'agent_nowhere', to_number => '+14155557777'),
  "GET /metrics" ]
--- more_headers eval
[ Retell::signed_headers(::CI(agent_id => 'agent_8a1b2c3d4e5f60718293a4b5')),
  Retell::signed_headers(::CI(agent_id => 'agent_8a1b2c3d4e5f60718293a4b5', from_number => '+14155559999')),
  Retell::signed_headers(::CI(agent_id => 'agent_nowhere', to_number => '+14155557777')),
  "" ]
--- error_code eval
[200, 200, 200, 200]
--- response_body_like eval
[ qr/"customer_known":"false"/, qr/"customer_known":"false"/, qr/^\{"call_inbound":\{"dynamic_variables":\{\}\}\}$/,
  qr/retell_webhook_requests_total\{endpoint="call_inbound",outcome="applied"\} 2\n(?s:.*)retell_webhook_requests_total\{endpoint="call_inbound",outcome="unrouted"\} 1\n(?s:.*)retell_webhook_request_duration_seconds_count\{endpoint="call_inbound"\} 3\n/ ]



=== TEST 21: an event name of 150 characters is named whole in the 400 (a 128-byte buffer cut it and left it unterminated)
--- deliveries eval
[ [ '/ci', '{"event":"' . ('e' x 150) . '","call_inbound":{}}' ] ]
--- error_code: 400
--- response_body_like eval
qr/^\{"error":"invalid_payload","message":"event \\"e{150}\\" is not call_inbound"\}\n$/



=== TEST 22: a known caller stored without a name, linked by the answer's metadata: the name the call collects is filled, as by a match by phone
--- db_setup
INSERT INTO retell.customers (company_id, phone_e164, phone_raw, phone_display) VALUES (1, '+14155550134', '+14155550134', '(415) 555-0134');
INSERT INTO retell.customers (company_id, phone_e164, phone_raw, phone_display) VALUES (1, '+15105550148', '+15105550148', '(510) 555-0148');
--- deliveries eval
[ [ '/ci', ::CI(agent_id => 'agent_8a1b2c3d4e5f60718293a4b5', call_id => 'call_meta') ],
  [ '/in', ::B('call_ended', 'call_meta', metadata => { retell_customer_id => 1, retell_open_ticket_ids => [] },
               retell_llm_dynamic_variables => { customer_known => 'true', customer_name => '' },
               collected_dynamic_variables => { customer_name => 'Dana Whitfield' }) ],
  [ '/in', ::B('call_ended', 'call_phone', from_number => '+15105550148',
               collected_dynamic_variables => { customer_name => 'Lee Park' }) ] ]
--- error_code eval
[200, 200, 200]
--- db_check
is(db_value(q{SELECT customer_id FROM retell.calls WHERE call_id = 'call_meta'}), 1, "$name: linked by the metadata");
is(db_value(q{SELECT name FROM retell.customers WHERE id = 2}), 'Lee Park', "$name: by phone: the name is filled");
is(db_value(q{SELECT name FROM retell.customers WHERE id = 1}), 'Dana Whitfield', "$name: by metadata: the name is filled");



=== TEST 23: an event name of 61 "é" (122 bytes): the 400 is JSON in UTF-8 (the 128-byte buffer cut the name inside a character)
--- deliveries eval
[ [ '/ci', '{"event":"' . ("\xc3\xa9" x 61) . '","call_inbound":{}}' ] ]
--- error_code: 400
--- response_body_like eval
qr/^\{"error":"invalid_payload"/
--- db_check
ok(eval { JSON::PP->new->utf8->decode($::body); 1 }, "$name: the answer decodes as UTF-8 JSON") or diag($@);



=== TEST 24: an empty customer_name, as the answer gives a known caller with no name and Retell echoes back, is no name: a later call fills it
--- db_setup
INSERT INTO retell.customers (company_id, phone_e164, phone_raw, phone_display) VALUES (1, '+14155550134', '+14155550134', '(415) 555-0134');
--- deliveries eval
[ [ '/in', ::B('call_started', 'call_e1', retell_llm_dynamic_variables => { customer_known => 'true', customer_name => '' }) ],
  [ '/in', ::B('call_ended', 'call_e2', collected_dynamic_variables => { customer_name => 'Dana Whitfield' }) ] ]
--- error_code eval
[200, 200]
--- db_check
is(db_value(q{SELECT name FROM retell.customers WHERE id = 1}), 'Dana Whitfield', "$name: the name filled by the later call");



=== TEST 25: the client goes away while the lookup waits: the budget still answers (a closed connection), and nothing is left armed
--- postgres: blackhole
--- deliveries eval
[ [ '/ci', ::CI(agent_id => 'agent_8a1b2c3d4e5f60718293a4b5', call_id => 'call_gone') ] ]
--- timeout: 0.1
--- abort
--- ignore_response
--- wait: 0.6
--- error_log eval
qr/\[warn\] .*retell call_inbound "call_gone": .*, answering without the caller's context/
