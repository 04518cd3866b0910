# Email exactly once against hostile, slow and misconfigured SMTP servers
# (issue 8, docs/email.md, docs/RELIABILITY.md), with t/smtp-script: a real
# SMTP server that injects, drips, stalls or refuses on cue.  Messages are
# counted at the server by Message-ID.
#
# A plain Test::More program: each test scripts the SMTP server, kills
# workers, reloads and starts other nginx instances, with no request of
# its own; its nginx is t/inc/NginxRun.pm's (one worker, debug log).
use strict;
use warnings;
use lib 't/inc';
use Test::More;
use Retell;
use Faults;
use NginxRun;
use JSON::PP ();
use Time::HiRes qw(time sleep);


our $tmp = "$REPO/build/smtp-faults-test";
system('mkdir', '-p', $tmp);

# a certificate for localhost, and passwords
our ($cert, $key) = ("$tmp/localhost.crt", "$tmp/localhost.key");
system("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost"
       . " -addext subjectAltName=DNS:localhost -keyout $key -out $cert"
       . " 2>/dev/null") == 0 or die "openssl req failed";

# A name with two addresses, for the fallback to the next one: a line in
# /etc/hosts while this file runs (root only, removed at the end; the
# block is skipped elsewhere).  getaddrinfo() puts 127.0.0.1 first.
our $multi = 'retell-multi.test';
our $hosts_added = 0;
if ($> == 0 && open my $h, '>>', '/etc/hosts') {
    print $h "127.0.0.2 $multi # retell t/065, removed at its end\n"
           . "127.0.0.1 $multi # retell t/065, removed at its end\n";
    close $h;
    $hosts_added = 1;
}
END {
    if ($hosts_added && open my $h, '<', '/etc/hosts') {
        my @keep = grep { !/ # retell t\/065, removed at its end$/ } <$h>;
        close $h;
        open $h, '>', '/etc/hosts' and print $h @keep;
    }
}

sub write_file { open my $fh, '>', $_[0] or die "$_[0]: $!"; print $fh $_[1]; close $fh }
sub slurp { open my $fh, '<', $_[0] or return ''; local $/; return <$fh> }

our ($dir, $pid);       # the current server's folder and process

# t/smtp-script with a mode or a script; returns once it listens
sub script_start {
    my (%o) = @_;
    script_stop();
    require File::Temp;
    $dir = File::Temp::tempdir(CLEANUP => 1);
    my @args = ('--port', $Retell::SMTP_PORT, '--dir', $dir,
                '--ready-file', "$dir/ready", '--tls-cert', $cert,
                '--tls-key', $key);
    push @args, '--mode', $o{mode} if $o{mode};
    push @args, '--mode-sessions', $o{sessions} if $o{sessions};
    push @args, '--script-json', JSON::PP::encode_json($o{script}) if $o{script};
    push @args, @{ $o{args} } if $o{args};
    $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>>', "$dir/server.log";
        exec "$REPO/t/smtp-script", @args or die "exec: $!";
    }
    wait_for(sub { -e "$dir/ready" }, 15) or die "smtp-script did not start: " . slurp("$dir/server.log");
    return $dir;
}

sub script_stop {
    return unless $pid;
    kill 'TERM', $pid;
    waitpid $pid, 0;
    undef $pid;
}

END { local $?; script_stop() }

# sessions.jsonl: one record per ended session
sub sessions {
    return [ map { JSON::PP::decode_json($_) } grep { /\S/ } split /\n/, slurp("$dir/sessions.jsonl") ];
}

# the stored messages' records
sub messages {
    return [ map { JSON::PP::decode_json(slurp($_)) } sort glob "$dir/[0-9]*.json" ];
}

# how many times each Message-ID was received
sub by_message_id {
    my %n;
    $n{ $_->{message_id} // '?' }++ for @{ messages() };
    return \%n;
}

sub outbox { return db_row(q{SELECT * FROM retell.email_outbox ORDER BY id LIMIT 1}) }

# docs/email.md's "send again" SQL, for the first row
sub send_again_recipe {
    my ($recipe) = slurp("$REPO/docs/email.md") =~ /-- send a failed row again\n(.*?;)\n/s;
    return undef unless $recipe;
    $recipe =~ s/WHERE id = 42/WHERE id = 1/;
    return $recipe;
}

sub smtp_config {
    my (%o) = @_;
    my $server = $o{server} // "localhost:$Retell::SMTP_PORT";
    return Retell::pg_http_config() . <<"_EOC_" . ($o{extra} // '');
retell_smtp_server $server;
retell_smtp_from retell\@parkview.test;
retell_smtp_timeout @{[ $o{timeout} // '2s' ]};
retell_smtp_backoff 500ms;
_EOC_
}

sub tls_config {
    return "retell_smtp_starttls required;\nretell_smtp_trusted_certificate $cert;\n";
}

# one test: no SMTP server until it starts one, the two endpoints (each
# with extra_config) and /fast
sub fault_block {
    my ($name, %o) = @_;
    my $extra = delete $o{extra_config} // '';
    block($name, workers => 1,
          http => smtp_config(),
          config => Retell::webhook_locations(in => $extra, out => $extra)
                    . "location = /fast { return 200 \"fast\\n\"; }\n",
          each => sub { script_stop() },
          %o);
}

fault_block('TEST 1: STARTTLS response injection: the injected replies are refused, nothing is recorded sent that no server accepted',
    http => ::smtp_config(extra => ::tls_config()),
    test => sub {
        my ($name) = @_;
        ::script_start(mode => 'inject-full', sessions => '1');
        Retell::queue_rows(1);
        ok(wait_for(sub { (::outbox()->{attempts} // 0) >= 1 && ::outbox()->{status} eq 'pending' }, 10), "$name: the first attempt fails");
        like(::outbox()->{last_error}, qr/sent data after its reply to STARTTLS|TLS handshake/, "$name: as injection");
        my $s1 = ::sessions()->[0];
        ok(!grep({ /^(MAIL|RCPT|DATA)/i } @{ $s1->{commands} }), "$name: nothing sent after the injection")
            or diag(Test::More::explain($s1->{commands}));
        ok(!$s1->{tls}, "$name: no TLS on the injected stream");
        # the second session is a correct server
        ok(wait_for(sub { ::outbox()->{status} eq 'sent' }, 10), "$name: sent by the next session");
        is_deeply([ values %{ ::by_message_id() } ], [1], "$name: one message at the server");
        ok(::messages()->[0]{tls}, "$name: over TLS");
    });


fault_block('TEST 2: a server that drips its EHLO reply times out on schedule, then the message goes out once',
    test => sub {
        my ($name) = @_;
        ::script_start(mode => 'drip-ehlo', sessions => '1', args => [ '--drip-interval', '0.5', '--drip-lines', '40' ]);
        Retell::queue_rows(1);
        ok(wait_for(sub { ::outbox()->{status} eq 'sent' }, 20), "$name: sent in the end");
        my ($s1) = @{ ::sessions() };
        like($s1->{ended}, qr/client_closed/, "$name: the client ended the dripping session");
        cmp_ok($s1->{duration}, '<', 3.5, "$name: after the 2 s reply timeout, not 20 s of drip");
        is_deeply([ values %{ ::by_message_id() } ], [1], "$name: one message");
        like(block_log(), qr/timed out waiting for a reply/, "$name: logged");
    });


fault_block('TEST 3: SNI is the server\'s name, from a NUL-terminated copy; none for an address',
    http => ::smtp_config(extra => "retell_smtp_starttls required;\n"),
    test => sub {
        my ($name) = @_;
        ::script_start(mode => 'ok');
        Retell::queue_rows(1);
        ok(wait_for(sub { ::outbox()->{status} eq 'sent' }, 10), "$name: sent");
        is(::sessions()->[0]{sni}, 'localhost', "$name: SNI localhost, nothing after it");
    });


fault_block('TEST 4: no SNI when the server is named by its address',
    http => ::smtp_config(server => "127.0.0.1:$Retell::SMTP_PORT", extra => "retell_smtp_starttls required;\n"),
    test => sub {
        my ($name) = @_;
        ::script_start(mode => 'ok');
        Retell::queue_rows(1);
        ok(wait_for(sub { ::outbox()->{status} eq 'sent' }, 10), "$name: sent");
        ok(::sessions()->[0]{tls}, "$name: over TLS");
        ok(!defined ::sessions()->[0]{sni}, "$name: no SNI");
    });


fault_block('TEST 5: AUTH is never sent in clear: a server without STARTTLS gets no credentials, the row waits',
    http => do {
        ::write_file("$::tmp/right.password", "s3cret-pass\n");
        ::smtp_config(extra => "retell_smtp_trusted_certificate $::cert;\nretell_smtp_auth mailer $::tmp/right.password;\n")
    },
    test => sub {
        my ($name) = @_;
        ::script_start(mode => 'no-starttls');
        Retell::queue_rows(1);
        ok(wait_for(sub { (::outbox()->{attempts} // 0) >= 1 && ::outbox()->{status} eq 'pending' }, 10), "$name: not sent, kept");
        ok(wait_for(sub { @{ ::sessions() } >= 1 }, 5), "$name: a session took place");
        my $s1 = ::sessions()->[0];
        ok(!grep({ /^AUTH/i } @{ $s1->{commands} }), "$name: no AUTH command") or diag(Test::More::explain($s1->{commands}));
        ok(!$s1->{auth_in_clear}, "$name: no credentials in clear");
        is(scalar @{ ::messages() }, 0, "$name: nothing delivered");
        like(block_log(), qr/failed at STARTTLS: a configuration or server problem/, "$name: a configuration problem");
    });


fault_block('TEST 6: a wrong password (535) is temporary; once the password file is fixed and nginx reloaded, the row is sent, once',
    http => do {
        ::write_file("$::tmp/wrong.password", "old-pass\n");
        ::smtp_config(extra => ::tls_config() . "retell_smtp_auth mailer $::tmp/wrong.password;\n")
    },
    test => sub {
        my ($name) = @_;
        ::script_start(script => { auth_users => { mailer => 's3cret-pass' }, require_auth => JSON::PP::true(),
                                   ehlo_extensions => { auth_before_tls => JSON::PP::false() } });
        Retell::queue_rows(1);
        ok(wait_for(sub { (::outbox()->{attempts} // 0) >= 1 && ::outbox()->{status} eq 'pending' }, 10), "$name: refused, kept");
        like(::outbox()->{last_error}, qr/^535/, "$name: the server's answer");
        ::write_file("$::tmp/wrong.password", "s3cret-pass\n");
        my ($master) = nginx_pids();
        kill 'HUP', $master;
        ok(wait_for(sub { ::outbox()->{status} eq 'sent' }, 15), "$name: sent after the fix");
        is_deeply([ values %{ ::by_message_id() } ], [1], "$name: one message");
        ok(::messages()->[0]{tls} && !::messages()->[0]{auth_in_clear}, "$name: AUTH over TLS");
        like(block_log(), qr/failed at AUTH: a configuration or server problem/, "$name: the 535 logged as a configuration problem");
    });


fault_block('TEST 7: a 554 greeting is temporary: the next session delivers',
    test => sub {
        my ($name) = @_;
        ::script_start(mode => 'greeting-554', sessions => '1');
        Retell::queue_rows(1);
        ok(wait_for(sub { ::outbox()->{status} eq 'sent' }, 10), "$name: sent, not failed");
        is(::outbox()->{attempts}, 2, "$name: on the second attempt");
        is_deeply([ values %{ ::by_message_id() } ], [1], "$name: one message");
        like(block_log(), qr/failed at greeting: a configuration or server problem/, "$name: logged as such");
    });


fault_block('TEST 8: poison rows end: no valid recipient fails at once; a lease expired at the last attempt fails the row',
    test => sub {
        my ($name) = @_;
        ::script_start(mode => 'ok');
        my $db = Retell::dbh();
        Retell::queue_rows(2);
        $db->do(q{UPDATE retell.email_outbox SET recipients = E'{"x@y.test>\r\nRCPT TO:<z@w.test"}' WHERE call_id = 'bulk-1'});
        $db->do(q{UPDATE retell.email_outbox SET status = 'sending', attempts = 8, next_attempt_at = now() - interval '1 s',
                  last_error = 'timed out' WHERE call_id = 'bulk-2'});
        ok(wait_for(sub { db_value(q{SELECT count(*) FROM retell.email_outbox WHERE status = 'failed'}) == 2 }, 10), "$name: both failed");
        like(db_value(q{SELECT last_error FROM retell.email_outbox WHERE call_id = 'bulk-1'}), qr/no valid recipient/, "$name: the bad recipient");
        like(db_value(q{SELECT last_error FROM retell.email_outbox WHERE call_id = 'bulk-2'}), qr/^lease expired after 8 attempts: timed out/, "$name: the expired lease");
        is(scalar @{ ::messages() }, 0, "$name: nothing sent");
        like(block_log(), qr/invalid recipient .* skipped/, "$name: the bad recipient logged");
    });


fault_block('TEST 9: a worker killed with SIGKILL in the middle of a session: its row is sent again within a lease, once',
    test => sub {
        my ($name) = @_;
        # the first session hangs at the greeting; the worker dies during it
        ::script_start(script => { greeting => [ { sessions => 1, silent => JSON::PP::true() } ] });
        Retell::queue_rows(1);
        ok(wait_for(sub { (::outbox()->{status} // '') eq 'sending' }, 10), "$name: claimed");
        my ($master, $worker) = nginx_pids();
        kill 'KILL', $worker;
        my $t_kill = time;
        ok(wait_for(sub { ::outbox()->{status} eq 'sent' }, 30), "$name: sent by the new worker");
        my $t = time - $t_kill;
        diag(sprintf "%s: sent %.1f s after the kill (lease 10 s)", $name, $t);
        cmp_ok($t, '<', 15, "$name: within about a lease");
        is_deeply([ values %{ ::by_message_id() } ], [1], "$name: one message at the server");
    });


fault_block('TEST 10: two nginx instances (one and two workers) against a server slower than the lease: every message received exactly once',
    http => ::smtp_config(extra => "retell_smtp_starttls off;\n"),
    test => sub {
        my ($name) = @_;
        # each reply 1.5 s late, a 2 s step timeout: a session lasts longer than its 10 s lease
        my $slow = { delay => 1.5 };
        ::script_start(script => { map { $_ => $slow } qw(greeting ehlo mail rcpt data end_of_data quit) });
        # the second instance, two workers
        my $n2 = Retell::nginx_start(port => $ENV{TEST_NGINX_SERVER_PORT} + 1,
                                     http => ::smtp_config(extra => "retell_smtp_starttls off;\n"));
        Retell::queue_rows(6, recipients => '{ops@parkview.test,leasing@parkview.test}');
        ok(wait_for(sub { db_value(q{SELECT count(*) FROM retell.email_outbox WHERE status = 'sent'}) == 6 }, 90), "$name: all sent");
        Retell::nginx_stop($n2);
        my $n = ::by_message_id();
        is(scalar(keys %$n), 6, "$name: six messages");
        is(scalar(grep { $_ != 1 } values %$n), 0, "$name: each exactly once");
        cmp_ok((sort { $b <=> $a } map { $_->{duration} } @{ ::sessions() })[0], '>', 10, "$name: sessions outlived the 10 s lease");
        is(db_value(q{SELECT max(attempts) FROM retell.email_outbox}), 1, "$name: nobody took a row from another");
        unlike(block_log() . ::slurp($n2->{error_log}), qr/lease lost/, "$name: no lease lost");
    });


fault_block('TEST 11: 500 to EHLO: HELO, and the message goes out in the same session',
    http => ::smtp_config(extra => "retell_smtp_starttls off;\nretell_smtp_helo mta.parkview.test;\n"),
    test => sub {
        my ($name) = @_;
        ::script_start(mode => 'ehlo-500');
        Retell::queue_rows(1);
        ok(wait_for(sub { ::outbox()->{status} eq 'sent' }, 10), "$name: sent");
        is(::outbox()->{attempts}, 1, "$name: at the first attempt");
        my $s1 = ::sessions()->[0];
        ok(grep({ /^HELO mta\.parkview\.test$/ } @{ $s1->{commands} }), "$name: HELO with retell_smtp_helo's name")
            or diag(Test::More::explain($s1->{commands}));
    });


fault_block('TEST 12: the first address of retell_smtp_server refuses: the next one is tried in the same session',
    http => ::smtp_config(server => "$::multi:$Retell::SMTP_PORT", extra => "retell_smtp_starttls off;\n"),
    test => sub {
        my ($name) = @_;
        SKIP: {
            skip "$name: needs root to add a name to /etc/hosts", 4 unless $::hosts_added;
            # only on 127.0.0.2: 127.0.0.1, which getaddrinfo() gives first, refuses
            ::script_start(mode => 'ok', args => [ '--host', '127.0.0.2' ]);
            Retell::queue_rows(1);
            ok(wait_for(sub { ::outbox()->{status} eq 'sent' }, 10), "$name: sent");
            is(::outbox()->{attempts}, 1, "$name: at the first attempt");
            is_deeply([ values %{ ::by_message_id() } ], [1], "$name: one message");
            like(block_log(), qr/127\.0\.0\.1:\d+ failed, trying the next address/, "$name: the fallback logged");
        }
    });


fault_block('TEST 13: greylisting: 451 to one recipient of two; it gets the email at a later attempt, the accepted one is not sent it again',
    http => ::smtp_config(extra => "retell_smtp_starttls off;\n"),
    test => sub {
        my ($name) = @_;
        ::script_start(mode => 'rcpt-451', sessions => '1', args => [ '--match', '^leasing@' ]);
        Retell::queue_rows(1, recipients => '{ops@parkview.test,leasing@parkview.test}');
        ok(wait_for(sub { ::outbox()->{status} =~ /^(sent|failed)$/ && ::outbox()->{attempts} >= 2
                          || @{ ::sessions() } >= 3 }, 15), "$name: a second attempt");
        is(::outbox()->{status}, 'sent', "$name: sent in the end");
        is(::outbox()->{attempts}, 2, "$name: at the second attempt");
        # counted at the server: each (Message-ID, recipient) once
        my %got;
        for my $m (@{ ::messages() }) { $got{"$m->{message_id} $_"}++ for @{ $m->{rcpt_tos} } }
        my ($mid) = keys %{ ::by_message_id() };
        is_deeply(\%got, { "$mid ops\@parkview.test" => 1, "$mid leasing\@parkview.test" => 1 },
                  "$name: each recipient exactly once, one Message-ID") or diag(Test::More::explain(\%got));
        is_deeply(::sessions()->[-1]{transactions}[0]{rcpt_tos}, [ 'leasing@parkview.test' ],
                  "$name: the second session addressed only the refused recipient");
        like(block_log(), qr/sent to 1 of 2 recipients, 1 to retry/, "$name: logged as partial");
    });


fault_block('TEST 14: 530 "Must issue a STARTTLS command first" to MAIL FROM is a configuration problem: temporary, sent once the server is put right',
    http => ::smtp_config(extra => "retell_smtp_starttls off;\n"),
    test => sub {
        my ($name) = @_;
        ::script_start(mode => 'must-starttls-530', sessions => '1-2');
        Retell::queue_rows(1);
        ok(wait_for(sub { ::outbox()->{status} =~ /^(sent|failed)$/ }, 15), "$name: ended");
        is(::outbox()->{status}, 'sent', "$name: sent, not failed");
        is(::outbox()->{attempts}, 3, "$name: at the third attempt, after two 530s");
        is_deeply([ values %{ ::by_message_id() } ], [1], "$name: one message");
        like(block_log(), qr/not sent, will retry: 530 5\.7\.0 Must issue a STARTTLS/, "$name: kept and retried");
        like(block_log(), qr/failed at MAIL FROM: a configuration or server problem/, "$name: logged as a configuration problem");
    });


fault_block('TEST 15: 530 "Authentication required" (a relay that wants AUTH, none configured) is temporary, sent once the relay is put right',
    http => ::smtp_config(extra => "retell_smtp_trusted_certificate $::cert;\n"),
    test => sub {
        my ($name) = @_;
        ::script_start(script => { sessions => [ { sessions => '1-2', require_auth => JSON::PP::true() } ] });
        Retell::queue_rows(1);
        ok(wait_for(sub { ::outbox()->{status} =~ /^(sent|failed)$/ }, 15), "$name: ended");
        is(::outbox()->{status}, 'sent', "$name: sent, not failed");
        is(::outbox()->{attempts}, 3, "$name: at the third attempt");
        is_deeply([ values %{ ::by_message_id() } ], [1], "$name: one message");
        like(block_log(), qr/not sent, will retry: 530 /, "$name: kept and retried");
        like(block_log(), qr/failed at MAIL FROM: a configuration or server problem/, "$name: logged as a configuration problem");
    });


fault_block('TEST 16: a sender refused (550 to MAIL FROM, retell_smtp_from is configuration) is temporary',
    http => ::smtp_config(extra => "retell_smtp_starttls off;\n"),
    test => sub {
        my ($name) = @_;
        ::script_start(script => { mail => [ { sessions => 1, reply => '550 5.7.1 sender not allowed to relay' } ] });
        Retell::queue_rows(1);
        ok(wait_for(sub { ::outbox()->{status} =~ /^(sent|failed)$/ }, 15), "$name: ended");
        is(::outbox()->{status}, 'sent', "$name: sent, not failed");
        is(::outbox()->{attempts}, 2, "$name: at the second attempt");
        is_deeply([ values %{ ::by_message_id() } ], [1], "$name: one message");
        like(block_log(), qr/failed at MAIL FROM: a configuration or server problem/, "$name: logged as a configuration problem");
    });


fault_block('TEST 17: an EHLO reply of 5 KB in one write (72 short lines, STARTTLS last) is parsed whole; the message goes out over TLS at the first attempt',
    http => ::smtp_config(extra => ::tls_config()),
    test => sub {
        my ($name) = @_;
        my @ehlo = ('smtp-script.test greets you', (map { sprintf 'X-EXT-%03d %s', $_, 'a' x 60 } 0 .. 70), 'STARTTLS');
        my $size = 0;
        $size += 6 + length for @ehlo;
        cmp_ok($size, '>', 5000, "$name: the reply is larger than the 4 KB buffer");
        ::script_start(script => { ehlo => { code => 250, text => \@ehlo } });
        Retell::queue_rows(1);
        ok(wait_for(sub { ::outbox()->{status} eq 'sent' || (::outbox()->{attempts} // 0) >= 2 }, 15), "$name: ended");
        is(::outbox()->{status}, 'sent', "$name: sent");
        is(::outbox()->{attempts}, 1, "$name: at the first attempt");
        ok(::messages()->[0]{tls}, "$name: over TLS: the last line, past 4 KB, was read");
        unlike(block_log(), qr/reply line too long/, "$name: no line too long");
    });


fault_block('TEST 18: a claim that comes back with less of its lease left than the margin starts no session; the row is retried',
    http => ::smtp_config(extra => "retell_smtp_starttls off;\n"),
    test => sub {
        my ($name) = @_;
        ::script_start(mode => 'ok');
        my $db = Retell::dbh();
        # queued not yet due, so the claim can be held up before it runs
        Retell::queue_rows(1, due => 'infinity');
        my $locker = Retell::lock_rows(q{LOCK TABLE retell.customers IN ACCESS EXCLUSIVE MODE});
        $db->do(q{UPDATE retell.email_outbox SET next_attempt_at = now()});
        # the claim waits for the lock for 8 s of its 10 s lease (the margin is 2.5 s)
        ok(wait_for(sub { db_value(q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'
                                     AND query LIKE '%email_outbox%' AND now() - query_start > interval '8 s'}) }, 15),
           "$name: the claim waited 8 s");
        $locker->rollback;
        $locker->disconnect;
        ok(wait_for(sub { ::outbox()->{status} eq 'sent' }, 15), "$name: sent in the end");
        is(::outbox()->{attempts}, 2, "$name: the late claim spent one attempt");
        is(scalar @{ ::sessions() }, 1, "$name: one session: none for the late claim");
        like(block_log(), qr/too little of its lease left/, "$name: logged");
        unlike(block_log(), qr/lease could not be renewed/, "$name: no session started only to be ended");
    });


fault_block('TEST 19: docs/email.md\'s "send again" SQL run while a session still holds the row changes nothing: the message goes out once, by that session (without its status guard a second worker took the row, and a message whose DATA was out went twice)',
    http => ::smtp_config(extra => "retell_smtp_starttls off;\n"),
    test => sub {
        my ($name) = @_;
        # each reply 1.5 s late: a session lasts about 10 s, renewed at 3.3 s
        my $slow = { delay => 1.5 };
        ::script_start(script => { map { $_ => $slow } qw(greeting ehlo mail rcpt data end_of_data quit) });
        Retell::queue_rows(1);
        ok(wait_for(sub { (::outbox()->{status} // '') eq 'sending' }, 10), "$name: claimed by the first nginx");
        my $n2 = Retell::nginx_start(port => $ENV{TEST_NGINX_SERVER_PORT} + 1, workers => 1,
                                     http => ::smtp_config(extra => "retell_smtp_starttls off;\n"));
        # the recipe, as docs/email.md gives it, while the first session runs
        my $recipe = ::send_again_recipe();
        ok($recipe, "$name: the recipe found in docs/email.md");
        is(Retell::dbh()->do($recipe) + 0, 0, "$name: it changes no row that is not failed");
        ok(wait_for(sub { ::outbox()->{status} eq 'sent' }, 40), "$name: sent");
        Retell::nginx_stop($n2);
        is(scalar @{ ::sessions() }, 1, "$name: one session");
        is_deeply([ values %{ ::by_message_id() } ], [1], "$name: one message at the server");
        unlike(block_log(), qr/lease lost/, "$name: its lease kept");
    });


fault_block('TEST 20: docs/email.md\'s "send again" SQL puts a failed row back: sent once; run again on the sent row, it changes nothing',
    http => ::smtp_config(extra => "retell_smtp_starttls off;\n"),
    test => sub {
        my ($name) = @_;
        ::script_start(script => {});
        Retell::queue_rows(1, due => 'infinity');
        Retell::dbh()->do(q{UPDATE retell.email_outbox SET status = 'failed', attempts = 8, last_error = '554 refused'});
        my $recipe = ::send_again_recipe();
        is(Retell::dbh()->do($recipe) + 0, 1, "$name: the failed row put back");
        ok(wait_for(sub { ::outbox()->{status} eq 'sent' }, 15), "$name: sent");
        is(::outbox()->{attempts}, 1, "$name: its attempts counted from 0");
        is(Retell::dbh()->do($recipe) + 0, 0, "$name: again, on the sent row: no row changed");
        is_deeply([ values %{ ::by_message_id() } ], [1], "$name: one message at the server");
    });

fault_block('TEST 21: a 250 to the end of data with more bytes after it (a 421) in the same read: the message was taken, it is not sent again (it was: the unasked bytes failed the session before the 250 counted)',
    http => ::smtp_config(extra => "retell_smtp_starttls off;\n"),
    test => sub {
        my ($name) = @_;
        ::script_start(script => { end_of_data => [ { sessions => 1, reply => '250 2.0.0 queued',
                                                      inject => "421 4.3.2 shutting down\r\n", then => 'close' } ] });
        Retell::queue_rows(1);
        ok(wait_for(sub { ::outbox()->{status} =~ /^(sent|failed)$/ || @{ ::messages() } >= 2 }, 15), "$name: ended");
        is(::outbox()->{status}, 'sent', "$name: sent");
        is(::outbox()->{attempts}, 1, "$name: at the first attempt");
        is_deeply([ values %{ ::by_message_id() } ], [1], "$name: one message at the server");
        unlike(block_log(), qr/failed at protocol/, "$name: not logged as a server problem");
    });


fault_block('TEST 22: a 250 to the end of data, then the server closes without a reply to QUIT: sent once',
    http => ::smtp_config(extra => "retell_smtp_starttls off;\n"),
    test => sub {
        my ($name) = @_;
        ::script_start(script => { end_of_data => [ { sessions => 1, reply => '250 2.0.0 queued', then => 'close' } ] });
        Retell::queue_rows(1);
        ok(wait_for(sub { ::outbox()->{status} =~ /^(sent|failed)$/ || @{ ::messages() } >= 2 }, 15), "$name: ended");
        is(::outbox()->{status}, 'sent', "$name: sent");
        is(::outbox()->{attempts}, 1, "$name: at the first attempt");
        is_deeply([ values %{ ::by_message_id() } ], [1], "$name: one message at the server");
    });


fault_block('TEST 23: worker_shutdown_timeout ends a session in its TLS handshake at once, not at the step timeout (nginx\'s own handshake handler does not look at c->close)',
    main => "worker_shutdown_timeout 1s;\n",
    http => ::smtp_config(timeout => '10s', extra => ::tls_config()),
    test => sub {
        my ($name) = @_;
        ::script_start(script => { starttls => [ { sessions => 1, reply => '220 2.0.0 go ahead', handshake => JSON::PP::false() } ] });
        Retell::queue_rows(1);
        ok(wait_for(sub { block_log() =~ /retell smtp: TLS handshake with/ }, 10), "$name: in the handshake");
        my ($master, $old) = nginx_pids();
        kill 'HUP', $master;
        my $t0 = time;
        ok(wait_for(sub { !pid_alive($old) }, 20), "$name: the old worker exits");
        cmp_ok(time - $t0, '<', 5, "$name: at the 1 s shutdown timeout, not the 10 s step timeout");
        like(block_log(), qr/worker is shutting down/, "$name: the session ended for the shutdown");
        unlike(block_log(), qr/open socket|\[alert\]/, "$name: no socket left open");
        ok(wait_for(sub { ::outbox()->{status} eq 'sent' }, 20), "$name: the message goes out later, from the new worker");
        is_deeply([ values %{ ::by_message_id() } ], [1], "$name: once");
    });


done_testing();
