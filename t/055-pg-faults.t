# The PostgreSQL pool under single, deterministic faults (issue 7,
# docs/RELIABILITY.md): idle connections reset, a blackholed host, a
# backend stopped while a statement is being sent, a large answer that
# arrives whole, PostgreSQL restarting, graceful exit with connections
# in every state, worker_shutdown_timeout, a host that stops answering
# under the pool's only connection.  Each test failed against the pool
# of 36d0be6 (TEST 10: of 7458703).
#
# A plain Test::More program: each test stops workers and backends,
# resets connections and restarts PostgreSQL between requests, so it runs
# its own nginx for each test (t/inc/NginxRun.pm, as Test::Nginx would:
# one worker, debug log).
use strict;
use warnings;
use lib 't/inc';
use Test::More;
use Retell;
use Faults;
use NginxRun;
use Time::HiRes qw(time sleep);
use IO::Socket::INET;

sub R { Retell::sample(@_) }
sub B { Retell::event_body(@_) }
sub C { Retell::with_call_id(@_) }

# the proxy and the blackhole live for the whole file, on ports derived
# from the test cluster's, so the configurations below can name them
proxy_start();
our $hole = blackhole_start();
our ($pg_port) = $Retell::PG =~ /port=(\d+)/;

# one test: the proxy passing everything, the two endpoints (each with
# extra_config) and /fast, a location without the database
sub pg_block {
    my ($name, %o) = @_;
    webhook_block($name, each => sub { proxy_cmd('pass'); proxy_cmd('resume') }, %o);
}

# the worker of the test nginx (one worker)
sub worker { my (undef, @w) = nginx_pids(); return $w[-1] }

# request headers now, the body later: lets a test order nginx's events
sub post_headers {
    my ($path, $body) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $ENV{TEST_NGINX_SERVER_PORT}, Timeout => 10)
        or die "connect: $!";
    $sock->autoflush(1);
    print $sock "POST $path HTTP/1.1\r\nHost: localhost\r\n"
        . "Content-Type: application/json\r\n"
        . "X-Retell-Signature: " . Retell::sign($body) . "\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n";
    return $sock;
}

# an HTTP/1.1 keepalive answer: status and body by Content-Length
sub read_answer {
    my ($sock) = @_;
    local $/ = "\r\n\r\n";
    my $head = <$sock> // '';
    my ($status) = $head =~ m{^HTTP/1\.\d (\d+)};
    my ($len) = $head =~ /\r\nContent-Length: (\d+)/i;
    my $body = '';
    read($sock, $body, $len) if $len;
    return ($status // 0, $body);
}

# requests whose header nginx has read (a debug line each)
sub headers_read { return scalar(() = Retell::block_log() =~ /http header done/g) }

pg_block('TEST 1: idle connections reset while a delivery\'s body arrives: the delivery is applied on a new connection',
    http => Faults::proxy_http_config() . "retell_postgres_pool 2;\n",
    test => sub {
        my ($name) = @_;
        # two pool connections, through the proxy, idle
        my @r = concurrent_posts([ '/in', C(R('inbound-call_started'), 'rst-a') ],
                                 [ '/in', C(R('inbound-call_started'), 'rst-b') ]);
        is(scalar(grep { $_->[0] == 200 } @r), 2, "$name: two deliveries open two connections");
        wait_for(sub { proxy_cmd('count') == 2 }, 5);
        is(proxy_cmd('count'), 2, "$name: both idle, through the proxy");
        # the body is read, then both connections die, before the worker sees either
        my $body = C(R('inbound-call_started'), 'rst-c');
        my $h0 = headers_read();
        my $sock = post_headers('/in', $body);
        ok(wait_for(sub { headers_read() > $h0 }, 5), "$name: nginx has the headers");
        my $w = worker();
        kill 'STOP', $w;
        print $sock $body;
        # the whole body queued at nginx's end of the client connection
        my $client = $sock->sockport;
        wait_for(sub { grep { $_->{remote} == $client && $_->{rx} >= length $body } tcp_sockets() }, 5)
            or diag("$name: the body not seen queued at nginx");
        proxy_cmd('reset');
        # the resets arrived: no connection of nginx to the proxy is established
        my ($proxy) = Faults::proxy_conninfo() =~ /port=(\d+)/;
        wait_for(sub { !grep { $_->{remote} == $proxy && $_->{state} eq '01' } tcp_sockets() }, 5)
            or diag("$name: nginx's connections to the proxy not seen reset");
        kill 'CONT', $w;
        my ($s, $b) = read_answer($sock);
        is($s, 200, "$name: applied, not refused");
        like($b, qr/"duplicate":false/, "$name: once");
        is(db_value(q{SELECT count(*) FROM retell.calls WHERE call_id = 'rst-c'}), 1, "$name: stored");
        # the same connection keeps serving: the request was not freed under it
        print $sock "GET /fast HTTP/1.1\r\nHost: localhost\r\n\r\n";
        ($s, $b) = read_answer($sock);
        is($s, 200, "$name: the client connection lives on");
        like(block_log(), qr/idle connection to "[^"]+" closed/, "$name: the dead connections are noticed and logged");
        unlike(block_log(), qr/\[alert\]|\[crit\]/, "$name: no alert");
    });


pg_block('TEST 2: first host blackholed: failover to the second within the connect timeout, then straight to it',
    http => do {
        my $pg = $Retell::PG;
        $pg =~ s/host=127\.0\.0\.1/host=127.0.0.1,127.0.0.1/;
        $pg =~ s/port=(\d+)/port=$::hole,$1/;
        qq{retell_postgres "$pg target_session_attrs=read-write connect_timeout=2";\nretell_postgres_pool 4;\n}
    },
    extra_config => <<'_EOC_',
retell_postgres_timeout 4s;
_EOC_
    test => sub {
        my ($name) = @_;
        my ($s, $b, $t) = post('/in', R('inbound-call_started'));
        is($s, 200, "$name: applied through the second host");
        diag(sprintf "%s: first delivery applied after %.3f s", $name, $t);
        cmp_ok($t, '>=', 1.9, "$name: after the first host's connect timeout");
        cmp_ok($t, '<', 3, "$name: well within the delivery's budget");
        # three at once need three more connections: the good host is remembered
        my $t0 = time;
        my @r = concurrent_posts(map { [ '/in', C(R('inbound-call_started'), "fo-$_") ] } 1 .. 3);
        is(scalar(grep { $_->[0] == 200 } @r), 3, "$name: new connections go to the host that worked");
        cmp_ok(time - $t0, '<', 0.8, "$name: without waiting on the blackhole again");
        like(block_log(), qr/connection to "127\.0\.0\.1:$::hole" timed out after 2000 ms/, "$name: the timeout is logged");
    });


pg_block('TEST 3: a backend stopped while a large statement is being sent: after it resumes the statement is sent whole and answered, not given up, not 30 s later',
    http => qq{retell_postgres "$Retell::PG";\nretell_postgres_pool 1;\n},
    config => do {
        Retell::webhook_locations(in => "retell_postgres_timeout 1s; client_max_body_size 40m; client_body_buffer_size 40m;")
        . "location = /in_patient { retell_webhook inbound; retell_webhook_secret $Retell::SECRET; retell_postgres_timeout 8s; }\n"
        . "location = /fast { return 200; }\n"
    },
    test => sub {
        my ($name) = @_;
        # the pool's one connection exists
        my ($s0) = post('/in_patient', C(R('inbound-call_started'), 'small-first'));
        is($s0, 200, "$name: connected");
        my ($backend) = pg_backend_pids();
        ok($backend, "$name: the pool's backend");
        kill 'STOP', $backend;
        # ~16 MB of statement (payload and transcript): more than the sockets hold
        my $big = B('call_ended', 'big-send', inbound => 1, call_status => 'ended',
                    transcript => 'Agent: hello. ' x 600_000);
        my ($s, undef, $t) = post('/in', $big);
        is($s, 503, "$name: the big one times out while it is being sent");
        cmp_ok($t, '<', 2, "$name: at its timeout");
        kill 'CONT', $backend;
        my $t0 = time;
        # the next delivery comes once the statement has ended: a connection still
        # draining when a delivery waits would be closed for it (TEST 10)
        # a connection that carried a command over 1 MB is closed once it is
        # answered (libpq keeps its largest buffer): its backend ends
        ok(wait_for(sub { !db_value(q{SELECT count(*) FROM pg_stat_activity WHERE pid = ?}, $backend) }, 6),
           "$name: the cancelled statement was sent whole and answered, its connection then closed");
        my ($s2) = post('/in_patient', C(R('inbound-call_started'), 'after-big'));
        is($s2, 200, "$name: the next delivery is served once the backend resumes");
        cmp_ok(time - $t0, '<', 6, "$name: not after a 30 s drain timeout");
        unlike(block_log(), qr/cancelled command was not|still draining/, "$name: the connection was not given up: its answer was read");
    });


pg_block('TEST 4: a large answer that arrives whole while the worker is busy: read at once (outbox claim with a 60 KB transcript)',
    http => do {
        Retell::smtp_http_config() . "retell_postgres_pool 1;\n"
    },
    test => sub {
        my ($name) = @_;
        my $mail = smtp_start();
        my $db = Retell::dbh();
        $db->do(q{INSERT INTO retell.calls (call_id, company_id, direction, transcript)
                  VALUES ('call_big_answer', 1, 'inbound', repeat('Caller: the heating is broken. ', 2000))});
        $db->do(q{INSERT INTO retell.tickets (company_id, call_id, status) VALUES (1, 'call_big_answer', 'new')});
        $db->do(q{INSERT INTO retell.email_outbox (company_id, ticket_id, call_id, reason, recipients, next_attempt_at)
                  SELECT 1, id, call_id, 'action_required', '{ops@parkview.test}', now() + interval '1 hour' FROM retell.tickets});
        # the claim waits behind a lock on the calls, with the row due
        my $locker = lock_rows(q{LOCK TABLE retell.calls IN ACCESS EXCLUSIVE MODE});
        $db->do(q{UPDATE retell.email_outbox SET next_attempt_at = now()});
        ok(wait_for(sub { db_value(q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%email_outbox%'}) }, 10),
           "$name: the claim waits on the lock");
        my $w = worker();
        kill 'STOP', $w;
        $locker->rollback;
        $locker->disconnect;
        # the whole answer is sent while the worker sleeps
        ok(wait_for(sub { !db_value(q{SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%email_outbox%' AND pid <> pg_backend_pid()}) }, 10),
           "$name: the backend has answered");
        kill 'CONT', $w;
        ok(wait_for(sub { @{ smtp_messages($mail) } == 1 }, 5), "$name: the email goes out at once");
        is(db_value(q{SELECT status FROM retell.email_outbox}), 'sent', "$name: recorded sent");
        unlike(block_log(), qr/claim failed/, "$name: the claim did not time out");
        smtp_stop();
    });


pg_block('TEST 5: PostgreSQL restarts: no delivery that arrives once it accepts connections is refused',
    extra_config => <<'_EOC_',
retell_postgres_timeout 1s;
_EOC_
    test => sub {
        my ($name) = @_;
        my ($s) = post('/in', C(R('inbound-call_started'), 'before'));
        is($s, 200, "$name: up");
        pg_stop();
        my @down = map { [ post('/in', C(R('inbound-call_started'), "down-$_")) ] } 1 .. 3;
        is(scalar(grep { $_->[0] == 503 } @down), 3, "$name: 503 while down");
        cmp_ok((sort { $b <=> $a } map { $_->[2] } @down)[0], '<', 1.5, "$name: each within its budget");
        # deliveries for a while: a pool whose backoff they drive backs off far
        my $down_until = time + 4;
        my $n = 0;
        post('/in', C(R('inbound-call_started'), "down-more-" . $n++)) while time < $down_until;
        my $up = pg_start_timed();
        my (@after, $i);
        while (time < $up + 3) {
            my $t0 = time;
            my ($st, undef, $dt) = post('/in', C(R('inbound-call_started'), "after-" . $i++));
            push @after, [ $st, $t0, $dt ];
        }
        my @refused = grep { $_->[0] != 200 && $_->[1] > $up } @after;
        my ($first) = grep { $_->[0] == 200 } @after;
        diag(sprintf "%s: %d deliveries after PostgreSQL was up, %d refused, first 200 answered %.3f s after it was up",
                     $name, scalar(@after), scalar(@refused), $first ? $first->[1] + $first->[2] - $up : -1);
        is(scalar(@refused), 0, "$name: none refused after PostgreSQL was back ("
           . scalar(@after) . " sent)");
        is(db_value(q{SELECT count(*) FROM retell.calls WHERE call_id LIKE 'after-%'}),
           scalar(grep { $_->[0] == 200 } @after), "$name: each 200 has its row");
        like(block_log(), qr/retell postgres is reachable again/, "$name: recovery is logged");
    });


pg_block('TEST 6: graceful exit with two connections draining cancelled statements: every socket closed, no alert',
    http => do {
        my $pg = $Retell::PG;
        qq{retell_postgres "$pg";\nretell_postgres_pool 2;\n}
    },
    extra_config => <<'_EOC_',
retell_postgres_timeout 1s;
_EOC_
    test => sub {
        my ($name) = @_;
        my ($s) = post('/in', R('inbound-call_started'));
        is($s, 200, "$name: up");
        my $locker = lock_rows(q{SELECT 1 FROM retell.calls FOR UPDATE});
        my @r = concurrent_posts([ '/in', R('inbound-call_ended') ], [ '/in', R('inbound-call_analyzed-action_required') ]);
        ok(!grep({ $_->[0] == 200 } @r), "$name: both stuck behind the lock, answered 503");
        # the two connections now drain cancelled statements
        my ($master) = nginx_pids();
        kill 'QUIT', $master;
        ok(wait_for(sub { !pid_alive($master) }, 10), "$name: nginx exits");
        $locker->rollback;
        $locker->disconnect;
        unlike(block_log(), qr/open socket|\[alert\]/, "$name: no socket left open");
    });


pg_block('TEST 7: worker_shutdown_timeout ends a worker whose statement hangs',
    main => <<'_EOC_',
worker_shutdown_timeout 1s;
_EOC_
    extra_config => <<'_EOC_',
retell_postgres_timeout 20s;
_EOC_
    test => sub {
        my ($name) = @_;
        my ($s) = post('/in', R('inbound-call_started'));
        is($s, 200, "$name: up");
        my $locker = lock_rows(q{SELECT 1 FROM retell.calls FOR UPDATE});
        my $sock = post_start('/in', R('inbound-call_ended'));
        ok(wait_for(sub { db_value(q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'}) }, 5), "$name: the statement waits");
        my ($master, $old) = nginx_pids();
        kill 'HUP', $master;
        my $t0 = time;
        ok(wait_for(sub { !pid_alive($old) }, 10), "$name: the old worker exits");
        cmp_ok(time - $t0, '<', 4, "$name: at the shutdown timeout, not the statement's 20 s");
        post_finish($sock);
        $locker->rollback;
        $locker->disconnect;
        unlike(block_log(), qr/open socket|\[alert\]/, "$name: no socket left open");
    });


pg_block('TEST 8: an idle connection ended by the server: its reason is logged, the next delivery is applied',
    test => sub {
        my ($name) = @_;
        my ($s) = post('/in', R('inbound-call_started'));
        is($s, 200, "$name: up");
        my ($backend) = pg_backend_pids();
        db_value('SELECT pg_terminate_backend(?)', $backend);
        ok(wait_for(sub { block_log() =~ /idle connection to "[^"]+" closed/ }, 5), "$name: noticed while idle");
        like(block_log(), qr/\[warn\] .*retell postgres: FATAL:  terminating connection due to administrator command/, "$name: the server's reason");
        ($s) = post('/in', R('inbound-call_ended'));
        is($s, 200, "$name: the next delivery is applied");
    });


pg_block('TEST 9: the only host blackholed: 503 within the delivery\'s budget, the worker serves meanwhile',
    http => do {
        my $pg = $Retell::PG;
        $pg =~ s/port=(\d+)/port=$::hole/;
        qq{retell_postgres "$pg";\nretell_postgres_connect_timeout 500ms;\n}
    },
    extra_config => <<'_EOC_',
retell_postgres_timeout 1500ms;
_EOC_
    test => sub {
        my ($name) = @_;
        my $sock = post_start('/in', R('inbound-call_started'));
        my ($fs, undef, $ft) = get('/fast');
        is($fs, 200, "$name: another location answers");
        cmp_ok($ft, '<', 0.3, "$name: at once");
        my $t0 = time;
        my ($s, $b) = post_finish($sock);
        is($s, 503, "$name: 503");
        cmp_ok(time - $t0, '<', 2, "$name: within the budget");
        like(block_log(), qr/connection to "127\.0\.0\.1:$::hole" timed out after 500 ms/, "$name: connect timeouts logged");
    });


pg_block('TEST 10: a pool of 1 whose one connection drains a statement that is never answered (its host stalled): the next delivery gets a new connection, to the other address, not 30 s later',
    http => do {
        my $pg = $Retell::PG;
        my ($proxy) = Faults::proxy_conninfo() =~ /port=(\d+)/;
        $pg =~ s/host=127\.0\.0\.1/host=127.0.0.1,127.0.0.1/;
        $pg =~ s/port=(\d+)/port=$proxy,$1/;
        qq{retell_postgres "$pg";\nretell_postgres_pool 1;\nretell_postgres_connect_timeout 1s;\n}
    },
    extra_config => <<'_EOC_',
retell_postgres_timeout 3s;
_EOC_
    test => sub {
        my ($name) = @_;
        my ($proxy) = Faults::proxy_conninfo() =~ /port=(\d+)/;
        my ($s) = post('/in', C(R('inbound-call_started'), 'drain-a'));
        is($s, 200, "$name: the pool's one connection, through the proxy");
        is(proxy_cmd('count'), 1, "$name: it goes through the proxy");
        # the host vanishes without closing anything: no answer will ever come
        proxy_cmd('stall');
        my $stuck = C(R('inbound-call_ended'), 'drain-a');
        my ($s1, undef, $t1) = post('/in', $stuck);
        is($s1, 503, "$name: the stalled delivery is answered 503");
        cmp_ok($t1, '<', 4, "$name: at its timeout");
        # its statement is still on the connection; the next delivery needs the slot
        my ($s2, $b2, $t2) = post('/in', C(R('inbound-call_started'), 'drain-b'));
        diag(sprintf "%s: the next delivery answered %d after %.3f s", $name, $s2, $t2);
        is($s2, 200, "$name: the next delivery is applied, through the other address");
        like($b2, qr/"duplicate":false/, "$name: once");
        cmp_ok($t2, '>=', 0.9, "$name: after the stalled address's connect timeout");
        cmp_ok($t2, '<', 2.9, "$name: well within its budget, not after a 30 s drain");
        my ($s3, undef, $t3) = post('/in', C(R('inbound-call_started'), 'drain-c'));
        is($s3, 200, "$name: the one after it too");
        cmp_ok($t3, '<', 1, "$name: at once, on the new connection");
        my @closed = block_log() =~ /\[warn\] .*closing a connection to "127\.0\.0\.1:$proxy" still draining a cancelled command after \d+ ms, for a waiting delivery/g;
        is(scalar(@closed), 1, "$name: the draining connection given up once, logged");
        like(block_log(), qr/connection to "127\.0\.0\.1:$proxy" timed out after 1000 ms/, "$name: the stalled address tried first");
        # the stalled statement may still arrive: its retry is then a duplicate
        proxy_cmd('resume');
        my ($s4, $b4) = post('/in', $stuck);
        is($s4, 200, "$name: the retry of the 503 is answered");
        is(db_value(q{SELECT count(*) FROM retell.webhook_events WHERE call_id = 'drain-a' AND event = 'call_ended'}), 1,
           "$name: applied once");
        is(db_value(q{SELECT count(*) FROM retell.webhook_events WHERE call_id LIKE 'drain-_'}), 4, "$name: nothing applied twice");
        unlike(block_log(), qr/\[alert\]|\[crit\]|cancelled command was/, "$name: no alert, no drain timeout");
    });


# libpq's first connect() runs inside PQconnectStart(); a failure there
# (ENOENT, EACCES, ENETUNREACH) must move on to the next host as a refused
# TCP connect does, not leave the delivery waiting out its budget.
pg_block('TEST 11: the first host fails inside PQconnectStart() (a Unix socket that is not there): the next host is tried at once, the first delivery is applied',
    http => do {
        my $pg = $Retell::PG;
        $pg =~ s{host=127\.0\.0\.1}{host=/nonexistent-retell-socket-dir,127.0.0.1};
        qq{retell_postgres "$pg";\nretell_postgres_pool 2;\nclient_body_buffer_size 30m;\n}
    },
    extra_config => <<'_EOC_',
retell_postgres_timeout 4s;
_EOC_
    test => sub {
        my ($name) = @_;
        my ($s, $b, $t) = post('/in', C(R('inbound-call_started'), 'sync-fail-1'));
        is($s, 200, "$name: the first delivery applied through the second host");
        cmp_ok($t, '<', 2, "$name: at once, not at its budget");
        like(block_log(), qr{retell postgres connection failed: .*nonexistent-retell-socket-dir}, "$name: the first host's failure logged");
        unlike(block_log(), qr/unreachable/, "$name: the circuit stays closed");
    });


# A listener that accepts and closes at once stands for a server that is
# not up yet; it records when each connection attempt arrives. Without
# deliveries the probe backs off to 8 s; while one waits, the gap between
# attempts stays under 0.3 s, so a delivery waiting when PostgreSQL comes
# back is applied within that.
pg_block('TEST 12: PostgreSQL unreachable while a delivery waits: the next attempt comes within a quarter of a second of the last failure, however long the outage',
    http => do {
        my $pg = $Retell::PG;
        my $port = $::pg_port + 9;
        $pg =~ s/port=\d+/port=$port/;
        qq{retell_postgres "$pg";\nretell_postgres_pool 2;\n}
    },
    extra_config => <<'_EOC_',
retell_postgres_timeout 4s;
_EOC_
    test => sub {
        my ($name) = @_;
        my $file = "$ENV{TEST_NGINX_PG_DIR}.attempts";
        unlink $file;
        my $listener = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $::pg_port + 9,
                                             Listen => 64, ReuseAddr => 1) or die "listen: $!";
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            open my $out, '>>', $file or die $!;
            $out->autoflush(1);
            while (my $c = $listener->accept) { printf $out "%.6f\n", time; close $c }
            exit 0;
        }
        close $listener;
        my ($s, undef, $t) = post('/in', C(R('inbound-call_started'), 'retry-gap'));
        kill 'TERM', $pid;
        waitpid $pid, 0;
        is($s, 503, "$name: the delivery is answered 503 at its budget");
        open my $in, '<', $file or die $!;
        my @at = map { $_ + 0 } <$in>;
        cmp_ok(scalar @at, '>=', 12, "$name: attempts all along the budget");
        my @gaps = map { $at[$_] - $at[$_ - 1] } 1 .. $#at;
        my ($max) = sort { $b <=> $a } @gaps;
        diag(sprintf "%s: %d attempts in %.2f s, the longest gap %.3f s", $name, scalar @at, $t, $max // 0);
        cmp_ok($max, '<', 0.3, "$name: no gap of 0.3 s or more while the delivery waits");
        unlink $file;
    });

done_testing();
