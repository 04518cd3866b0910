# The outbox's metrics (issue 20, item 1): emails by result, the SMTP
# sessions' histogram, the rows due as the last poll found them and the
# time of that poll, with two workers sending.
#
# A plain Test::More program: it runs its own nginx (Retell::nginx_start)
# beside a real SMTP server that answers the first DATA with a 451 and
# refuses one recipient.  Rows due but not claimable are made with a
# FOR KEY SHARE lock from another session: the claim's FOR UPDATE SKIP
# LOCKED passes them by, while an UPDATE of their due time does not wait.
use strict;
use warnings;
use lib 't/inc';
use Test::More;
use Retell;

my $port = ($ENV{TEST_NGINX_PORT} // 1984) + 13;

reset_db();
smtp_start('tempfail-data' => 1, 'reject-rcpt' => '^refused@');

my $n = Retell::nginx_start(port => $port + 1, workers => 2,
                            http => smtp_http_config() . <<"_EOC_");
retell_metrics_zone 64k;
server {
    listen 127.0.0.1:$port;
    location = /metrics { retell_metrics; }
}
_EOC_

# stopped whatever happens: a failed assertion dies before the end
my $owner = $$;
END { local $?; Retell::nginx_stop($n) if $$ == $owner && $n }

sub scrape { return metrics_scrape($port) }

sub email { qq{retell_emails_total{result="$_[0]"}} }

my $sessions = 'retell_smtp_session_duration_seconds_count';

# the first polls found nothing
my $m0;
ok(wait_for(sub { $m0 = scrape(); ($m0->{retell_outbox_last_poll_seconds} // 0) > 0 }, 10),
   'a worker polled the outbox');
is($m0->{retell_outbox_rows_due}, 0, 'nothing due at first');

# four rows, not due yet; one of them to a recipient the server refuses
Retell::queue_rows(4, due => 'infinity');
dbh()->do(q{UPDATE retell.email_outbox SET recipients = '{refused@parkview.test}'
             WHERE call_id = 'bulk-4'});

# due, but held by another session: counted, not claimed
my $locker = lock_rows('SELECT id FROM retell.email_outbox FOR KEY SHARE');
my $t0 = time;
dbh()->do(q{UPDATE retell.email_outbox SET next_attempt_at = now()});
my $m;
ok(wait_for(sub { $m = scrape(); ($m->{retell_outbox_rows_due} // 0) == 4 }, 10),
   'the four rows due are counted while another session holds them')
    or diag("rows due: " . ($m->{retell_outbox_rows_due} // 'none'));
cmp_ok($m->{retell_outbox_last_poll_seconds}, '>=', $t0, 'the last poll is recent');
is($m->{ email('sent') } - $m0->{ email('sent') }, 0, 'none of them sent meanwhile');
is(db_value(q{SELECT sum(attempts) FROM retell.email_outbox}), 0, 'none of them attempted');

# released: three sent (one after a 451), one refused for good
$locker->rollback;
ok(wait_for(sub {
    db_value(q{SELECT count(*) FROM retell.email_outbox
               WHERE status IN ('sent', 'failed')}) == 4 }, 20),
   'every row ended');
ok(wait_for(sub { $m = scrape(); ($m->{retell_outbox_rows_due} // -1) == 0 }, 10),
   'nothing due once they are sent');

is($m->{ email('sent') } - $m0->{ email('sent') }, 3, 'emails sent: 3');
is($m->{ email('deferred') } - $m0->{ email('deferred') }, 1, 'emails deferred: the 451');
is($m->{ email('failed') } - $m0->{ email('failed') }, 1, 'emails failed: the refused recipient');
is($m->{$sessions} - $m0->{$sessions}, 5, 'five SMTP sessions timed');
is($m->{$sessions} - $m0->{$sessions},
   db_value(q{SELECT sum(attempts) FROM retell.email_outbox}),
   'one session per attempt the rows record');
is($m->{'retell_smtp_session_duration_seconds_bucket{le="+Inf"}'}, $m->{$sessions},
   'the sessions histogram: _count is its +Inf bucket');

Retell::nginx_stop($n);
unlike(do { local $/; open my $e, '<', $n->{error_log}; <$e> // '' },
       qr/\[(alert|crit|emerg)\]/, 'no alert');
undef $n;

done_testing();
