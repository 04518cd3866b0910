# Bodies nginx refuses for the module, as too large: $retell_outcome and
# retell_webhook_requests_total both say too_large, whether nginx finds the
# body too large in its first read or a later one (it was "-" and not
# counted when a later chunk went over), and with the operator's
# error_page 413 once the module has run.  A 413 nginx answers from the
# Content-Length before any module runs, redirected to an error_page, is
# logged and counted as the error page's location (docs/decisions.md).
#
# A plain Test::More program, as t/027-variables.t: one nginx (NginxRun),
# an access log of the module's variables, a scrape between requests.
use strict;
use warnings;
use lib 't/inc';
use Test::More;
use Retell;
use NginxRun;
use Time::HiRes ();
use IO::Socket::INET;

sub B { Retell::event_body(@_) }

my $format = join ' ', map { "\$$_" } qw(status retell_endpoint retell_call_id retell_event retell_outcome);

sub rev_block {
    my ($name, %o) = @_;
    my $loc = sub { my ($path, $extra) = @_; "location = $path { retell_webhook inbound; retell_webhook_secret $Retell::SECRET; $extra }\n" };
    block($name, workers => 1,
          http => Retell::pg_http_config() . "log_format rev '$format';\n",
          config => "access_log logs/rev.log rev;\n"
                    . $loc->('/small', 'client_max_body_size 10;')
                    . $loc->('/small_ep', 'client_max_body_size 10; error_page 413 /too_big;')
                    . "location = /too_big { internal; return 200 \"too big\\n\"; }\n"
                    . "location = /metrics { retell_metrics; }\n"
                    . "location = /fast { return 200 \"fast\\n\"; }\n",
          %o);
}

sub log_lines {
    my $root = $ENV{TEST_NGINX_SERVROOT};
    open my $fh, '<', "$root/logs/rev.log" or return [];
    return [ map { chomp; $_ } <$fh> ];
}

sub line {
    my ($n) = @_;
    Retell::wait_for(sub { @{ log_lines() } >= $n }, 10);
    return log_lines()->[$n - 1] // '';
}

sub scrape { return metrics_scrape() }

my $too_large = 'retell_webhook_requests_total{endpoint="inbound",outcome="too_large"}';

# a chunked body; with $pause, its second chunk a moment after the first,
# so that nginx reads it in the body's read handler, not in the first call
sub chunked {
    my ($path, $pause) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ENV{TEST_NGINX_SERVER_PORT}, Timeout => 10) or die $!;
    $sock->autoflush(1);
    my $head = "POST $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
               . "Transfer-Encoding: chunked\r\nX-Retell-Signature: v=1,d=00\r\n\r\n";
    my $first = "5\r\n{\"a\":\r\n";
    my $second = "32\r\n" . ('x' x 50) . "\r\n0\r\n\r\n";
    if ($pause) {
        print $sock $head . $first;
        Time::HiRes::sleep(0.5);
        print $sock $second;
    } else {
        print $sock $head . $first . $second;
    }
    local $/;
    my $resp = <$sock> // '';
    my ($status) = $resp =~ m{^HTTP/1\.\d (\d+)};
    return $status // 0;
}

rev_block('TEST 1: a chunked body over client_max_body_size is 413 too_large, whether nginx finds it in the first read or a later one',
    test => sub {
        my ($name) = @_;
        my $n = 1;                                  # the GET /fast
        my $m0 = scrape();
        $n++;                                       # the scrape
        is(chunked('/small', 0), 413, "$name: one packet: 413");
        $n++;
        like(line($n), qr{^413 inbound - - too_large$}, "$name: one packet: \$retell_outcome too_large");
        is(chunked('/small', 1), 413, "$name: two packets: 413");
        $n++;
        like(line($n), qr{^413 inbound - - too_large$}, "$name: two packets: \$retell_outcome too_large");
        my $m1;
        Retell::wait_for(sub { $m1 = scrape(); ($m1->{$too_large} // 0) - ($m0->{$too_large} // 0) >= 2 }, 3);
        is(($m1->{$too_large} // 0) - ($m0->{$too_large} // 0), 2, "$name: both counted too_large");
    });

rev_block('TEST 2: a 413 by Content-Length is too_large; with an error_page 413, a later chunk over the limit still is, on the webhook endpoint',
    test => sub {
        my ($name) = @_;
        my $n = 1;
        my $m0 = scrape();
        $n++;
        my ($s) = post('/small', B('call_started', 'call_rev_1'));
        is($s, 413, "$name: by Content-Length: 413");
        $n++;
        like(line($n), qr{^413 inbound - - too_large$}, "$name: by Content-Length: too_large");
        is(chunked('/small_ep', 1), 413, "$name: a later chunk, with an error_page: 413");
        $n++;
        like(line($n), qr{^413 inbound - - too_large$}, "$name: with an error_page: \$retell_endpoint inbound, \$retell_outcome too_large");
        my $m1;
        Retell::wait_for(sub { $m1 = scrape(); ($m1->{$too_large} // 0) - ($m0->{$too_large} // 0) >= 2 }, 3);
        is(($m1->{$too_large} // 0) - ($m0->{$too_large} // 0), 2, "$name: both counted too_large");
    });

done_testing();
