# Variables for log_format, map and headers (issue 20, item 2): what the
# module made of each delivery, through access_log with a custom
# log_format, for every kind of answer, with and without an error_page.
# Unknown values are "-"; the call id and event only once the signature
# is verified; the values survive an error_page's internal redirect.
#
# A plain Test::More program: each test sends its requests one by one,
# holding row locks between some, and reads the access log's line of
# each; its nginx is t/inc/NginxRun.pm's.
use strict;
use warnings;
use lib 't/inc';
use Test::More;
use Retell;
use NginxRun;

sub B { Retell::event_body(@_) }

my $format = join ' ', map { "\$$_" } qw(status retell_endpoint retell_call_id retell_event retell_outcome
    retell_ticket_id retell_ticket_status retell_email retell_duplicate retell_db_attempts retell_batch_size);

# one test: the log format, a limit zone, and a location for each kind of answer
sub var_block {
    my ($name, %o) = @_;
    my $loc = sub { my ($path, $extra) = @_; "location = $path { retell_webhook inbound; retell_webhook_secret $Retell::SECRET; $extra }\n" };
    block($name, workers => 1,
          http => Retell::pg_http_config() . <<"_EOC_",
log_format retell '$format \$retell_db_time';
limit_req_zone \$binary_remote_addr zone=retell_one:1m rate=1r/m;
_EOC_
          config => "access_log logs/retell.log retell;\n"
                    . $loc->('/in', '')
                    . $loc->('/out_auto', 'retell_postgres_timeout 1s;')
                    . $loc->('/small', 'client_max_body_size 10;')
                    . $loc->('/limited', 'limit_req zone=retell_one nodelay; limit_req_status 429;')
                    . $loc->('/slow', 'retell_postgres_timeout 1s;')
                    . $loc->('/in_ep', 'error_page 401 503 /ep; retell_postgres_timeout 1s;')
                    . "location = /ep { return 200 \"ep\\n\"; }\n"
                    . "location = /fast { return 200 \"fast\\n\"; }\n",
          %o);
}

sub log_lines {
    my $root = $ENV{TEST_NGINX_SERVROOT} // "$Retell::REPO/t/servroot";
    open my $fh, '<', "$root/logs/retell.log" or return [];
    return [ map { chomp; $_ } <$fh> ];
}

# the line of the n-th request (1-based), once logged
sub line {
    my ($n) = @_;
    Retell::wait_for(sub { @{ log_lines() } >= $n }, 10);
    return log_lines()->[$n - 1] // '';
}

var_block('TEST 1: each kind of answer says what the module made of it',
    test => sub {
        my ($name) = @_;
        my $n = 1;                                  # the GET /fast
        my $c = sub { $n++; line($n) };
        my $started = ::B('call_started', 'call_var_1');
        my $analyzed = ::B('call_analyzed', 'call_var_1', call_analysis => { custom_analysis_data => { action_required => 'true' } });

        post('/in', $started);
        like($c->(), qr{^200 inbound call_var_1 call_started applied 1 new none false 1 1 0\.\d{3}$}, "$name: 200 applied");
        post('/in', $analyzed);
        like($c->(), qr{^200 inbound call_var_1 call_analyzed applied 1 new queued false 1 1 0\.\d{3}$}, "$name: 200 applied, email queued");
        post('/in', $analyzed);
        like($c->(), qr{^200 inbound call_var_1 call_analyzed duplicate 1 new queued true 1 1 }, "$name: 200 duplicate");
        post('/in', ::B('call_started', 'call_var_2', agent_id => 'agent_nowhere'));
        like($c->(), qr{^202 inbound call_var_2 call_started unrouted - - none false 1 1 }, "$name: 202 unrouted");
        post('/in', '{"event":"chat_started","chat":{"chat_id":"c"}}');
        like($c->(), qr{^204 inbound - chat_started ignored - - - - - - -$}, "$name: 204 ignored, no call id");
        post('/in', 'not json');
        like($c->(), qr{^400 inbound - - bad_request - - - - - - -$}, "$name: 400");
        post('/in', $started, secret => 'another');
        like($c->(), qr{^401 inbound - - bad_signature - - - - - - -$}, "$name: 401: nothing from the unverified body");
        post('/small', $started);
        like($c->(), qr{^413 inbound - - too_large - - - - - - -$}, "$name: 413");
        post('/limited', ::B('call_started', 'call_var_3'));
        like($c->(), qr{^200 inbound call_var_3 }, "$name: the first under the limit");
        post('/limited', ::B('call_started', 'call_var_4'));
        like($c->(), qr{^429 inbound - - - - - - - - - -$}, "$name: 429 by limit_req: the module never ran, the location's endpoint only");
        my $locker = lock_rows(q{SELECT 1 FROM retell.calls WHERE call_id = 'call_var_1' FOR UPDATE});
        post('/slow', ::B('call_ended', 'call_var_1'));
        $locker->rollback;
        like($c->(), qr{^503 inbound call_var_1 call_ended unavailable - - - - 1 1 1\.\d{3}$}, "$name: 503 at the budget, the attempt timed");
        post('/out_auto', ::B('call_started', 'call_var_5', outbound => 1));
        like($c->(), qr{^200 inbound call_var_5 }, "$name: a call endpoint's rules");
    });


var_block('TEST 2: an error_page for 401 and 503 takes the answer, and the variables keep their values across its redirect',
    test => sub {
        my ($name) = @_;
        my $n = 1;
        my $c = sub { $n++; line($n) };
        my ($s, $b) = post('/in_ep', ::B('call_started', 'call_ep_1'), secret => 'another');
        is($s, 401, "$name: 401 kept");
        is($b, "ep\n", "$name: the operator's page");
        like($c->(), qr{^401 inbound - - bad_signature - - - - - - -$}, "$name: 401 through the error_page");
        ($s) = post('/in_ep', ::B('call_started', 'call_ep_1'));
        is($s, 200, "$name: applied");
        $c->();
        my $locker = lock_rows(q{SELECT 1 FROM retell.calls WHERE call_id = 'call_ep_1' FOR UPDATE});
        ($s, $b) = post('/in_ep', ::B('call_ended', 'call_ep_1'));
        $locker->rollback;
        is($s, 503, "$name: 503 kept");
        is($b, "ep\n", "$name: the operator's page");
        like($c->(), qr{^503 inbound call_ep_1 call_ended unavailable - - - - 1 1 1\.\d{3}$}, "$name: 503 through the error_page, the values kept");
    });

done_testing();
