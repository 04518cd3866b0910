# An email whose last allowed attempt fails temporarily becomes "failed"
# (docs/email.md: "or `failed` past the attempt limit"), and the alert of
# docs/operations.md, retell_emails_total{result="failed"}, sees it: an
# email is counted as its row stands once recorded (it was counted
# "deferred", by the session's answer alone).  As t/029-metrics-outbox.t: its own nginx beside a real SMTP
# server that answers DATA with 451.
use strict;
use warnings;
use lib 't/inc';
use Test::More;
use Retell;

my $port = ($ENV{TEST_NGINX_PORT} // 1984) + 23;

reset_db();
smtp_start('tempfail-data' => 100);

my $n = Retell::nginx_start(port => $port + 1, workers => 1,
                            http => smtp_http_config() . <<"_EOC_");
retell_smtp_max_attempts 1;
server {
    listen 127.0.0.1:$port;
    location = /metrics { retell_metrics; }
}
_EOC_

my $owner = $$;
END { local $?; Retell::nginx_stop($n) if $$ == $owner && $n }

sub scrape { return metrics_scrape($port) }

sub email { qq{retell_emails_total{result="$_[0]"}} }

my $m0;
ok(wait_for(sub { $m0 = scrape(); ($m0->{retell_outbox_last_poll_seconds} // 0) > 0 }, 10), 'a worker polled the outbox');

Retell::queue_rows(1);
ok(wait_for(sub { db_value(q{SELECT count(*) FROM retell.email_outbox WHERE status = 'failed'}) == 1 }, 20),
   'the row is failed after its one temporary failure');
my $m;
ok(wait_for(sub { $m = scrape(); $m->{'retell_smtp_session_duration_seconds_count'} - $m0->{'retell_smtp_session_duration_seconds_count'} >= 1 }, 5),
   'its session timed');
is($m->{ email('failed') } - $m0->{ email('failed') }, 1, 'emails failed: 1, as the row');
is($m->{ email('deferred') } - $m0->{ email('deferred') }, 0, 'emails deferred: 0, nothing will be tried again');

Retell::nginx_stop($n);
undef $n;

done_testing();
