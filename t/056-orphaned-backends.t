# Backends of connections the pool gives up on (issue 17): a commit that
# waits for a synchronous standby that went away is not ended by
# lock_timeout nor by closing the socket, so every connection the pool
# gives up (to a waiting delivery, at its drain timeout, at exit) would
# leave a backend holding a connection slot.  The module asks each to
# stop (ngx_http_retell_pg_orphan.c); what must hold: under deliveries
# arriving for several budgets the worker's backends stay within twice
# its pool, and none is left once nginx has exited.
#
# A plain Test::More program: it runs its own nginx (Retell::nginx_start)
# to stop it mid-test.  synchronous_standby_names names a standby that
# does not exist, for the whole cluster while this file runs (restored at
# its end, even on failure); the module's connections ask for
# synchronous_commit, which the suite's cluster turns off.
use strict;
use warnings;
use lib 't/inc';
use Test::More;
use Time::HiRes qw(time sleep);
use Retell;

my $pool = 2;
my $port = ($ENV{TEST_NGINX_PORT} // 1984) + 7;

reset_db();

sub sync_standby {
    my ($names) = @_;
    dbh()->do(qq{ALTER SYSTEM SET synchronous_standby_names = '$names'});
    dbh()->do(q{SELECT pg_reload_conf()});
    # a new backend reads the reloaded file
    wait_for(sub {
        my $d = DBI->connect('dbi:Pg:' . dbh()->{Name}, 'postgres', '', { RaiseError => 1 });
        my ($v) = $d->selectrow_array('SHOW synchronous_standby_names');
        $d->disconnect;
        $v eq $names;
    }, 10) or die "synchronous_standby_names not reloaded";
}

my $owner = $$;
END {
    if ($$ == $owner) {
        local $?;
        eval { sync_standby('') };
    }
}

# the module's backends: every client backend but this test's
sub backends {
    return db_value(q{SELECT count(*) FROM pg_stat_activity
                       WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()});
}

sync_standby('ghost');

my $conninfo = "$Retell::PG options='-c synchronous_commit=on'";
my $n = Retell::nginx_start(port => $port + 1, workers => 1, http => <<"_EOC_");
retell_postgres "$conninfo";
retell_postgres_pool $pool;
client_body_buffer_size 1m;
server {
    listen 127.0.0.1:$port;
    location = /in {
        retell_webhook inbound;
        retell_webhook_secret $Retell::SECRET;
        retell_postgres_timeout 2s;
    }
}
_EOC_

# 3 deliveries a second for 10 s (five budgets), each of its own customer
# so that each reaches its commit; the backends counted as they arrive
my (@socks, $max);
$max = 0;
my $t0 = time;
for my $i (1 .. 30) {
    my $body = Retell::event_body('call_started', "orphan-$i", inbound => 1,
                                  start_timestamp => Retell::now_ms(),
                                  from_number => sprintf('+1415555%04d', 3000 + $i));
    push @socks, post_start('/in', $body, port => $port);
    my $b = backends();
    $max = $b if $b > $max;
    my $next = $t0 + $i / 3;
    sleep($next - time) if $next > time;
}
my @status = map { (post_finish($_))[0] } @socks;
my $b = backends();
$max = $b if $b > $max;

diag("backends: at most $max during the run, $b at its end");
cmp_ok($max, '<=', 2 * $pool + 1, "the worker's backends stay within twice its pool (and one being stopped)");
is(scalar(grep { $_ == 200 } @status), 0, "no commit confirmed while the standby is missing");

my $log = do { local $/; open my $fh, '<', $n->{error_log} or die; <$fh> };
like($log, qr/still draining a cancelled command after \d+ ms, for a waiting delivery; asking its backend \d+ to stop/,
     "connections gave way to waiting deliveries, their backends asked to stop");
like($log, qr/retell postgres: backend \d+ asked to stop/, "the server was asked");
my @ages = $log =~ /still draining a cancelled command after (\d+) ms, for a waiting delivery/g;
is(scalar(grep { $_ < 1000 } @ages), 0, "none gave way before a second of draining");

Retell::nginx_stop($n);
ok(wait_for(sub { backends() == 0 }, 15), "no backend of the module once nginx has exited")
    or diag(explain(db_rows(q{SELECT pid, state, wait_event_type, wait_event, query FROM pg_stat_activity
                               WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()})));

done_testing();
