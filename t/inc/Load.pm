package Load;

# A Retell-like load client for the fault tests: forked senders post signed
# deliveries of many calls, retry every non-2xx answer, connection error or
# timeout the way Retell does, and record every attempt; check_db() then
# compares the database with what the product promises (SPEC sections 3-5).
#
#   my $h = Load::start(calls => 150, concurrency => 16);
#   ... inject a fault; $h->progress->{refused} counts refusals so far ...
#   my $r = $h->wait;
#   my @problems = Load::check_db($r);       # () = all good
#   my @late = Load::refused_after($r, $t);  # refused although sent after $t
#   diag(Load::summary($r));                 # counts and req/s, one line
#
# A delivery is tried once, then again after each delay of "retries"
# ([0.5, 1, 2, 4] by default: up to 5 attempts) while it gets no 2xx.
#
# Results: { prefix, started, finished, deliveries => [ { call_id, event,
# path, seq, sha256, expected => {...}, attempts => [ { sent, answered,
# status (0: connection error or timeout), body } ], final } ] }

use strict;
use warnings;
use POSIX ();
use Time::HiRes ();
use IO::Socket::INET;
use IO::Select;
use Errno ();
use JSON::PP ();
use Digest::SHA ();
use File::Temp ();
use Retell ();
use Exporter 'import';

# for the test files' db_check code (package main)
our @EXPORT = qw(no_problems not_final_200 show_refused stored);

my $T = JSON::PP::true();
my $F = JSON::PP::false();

# Scenarios: the direction, the events sent (in order), and the call object
# fields each carries.  call_analyzed repeats call_ended's fields, as Retell
# sends the whole call object.  Only mapped agents of company 1 (Parkview:
# notifications on, valid recipients) are used, so every rule 1 or 2 call
# queues one email.
my %SCENARIO = (
    in_action_required => { dir => 'inbound',
        analysis => { call_successful => $T, custom_analysis_data => { action_required => 'true', urgency => 'same day' } } },
    in_no_action       => { dir => 'inbound',
        analysis => { call_successful => $T, custom_analysis_data => { action_required => $F } } },
    in_qualified       => { dir => 'inbound',
        analysis => { call_successful => $T, custom_analysis_data => { lead_qualified => $T } } },
    in_resolved        => { dir => 'inbound',
        analysis => { call_successful => $T, custom_analysis_data => {} } },
    in_voicemail       => { dir => 'inbound', reason => 'voicemail_reached',
        analysis => { call_successful => $F, in_voicemail => $T, custom_analysis_data => {} } },
    in_transfer        => { dir => 'inbound', reason => 'call_transfer',
        analysis => { call_successful => $T, custom_analysis_data => { action_required => $F } } },
    in_collected       => { dir => 'inbound', collected => { action_required => 'TRUE ' },
        analysis => { call_successful => $F, custom_analysis_data => {} } },
    out_interested     => { dir => 'outbound',
        analysis => { call_successful => $T, custom_analysis_data => { action_required => $T, lead_qualified => $T } } },
    out_not_interested => { dir => 'outbound',
        analysis => { call_successful => $F, custom_analysis_data => { action_required => 'false' } } },
    out_transfer       => { dir => 'outbound', reason => 'call_transfer',
        analysis => { call_successful => $T, custom_analysis_data => {} } },
    out_voicemail      => { dir => 'outbound', reason => 'voicemail_reached',
        analysis => { call_successful => $F, in_voicemail => $T, custom_analysis_data => {} } },
    # never connected: no call_started (SPEC section 2)
    out_no_answer      => { dir => 'outbound', reason => 'dial_no_answer',
        status => 'not_connected', events => [qw(call_ended call_analyzed)],
        analysis => { call_successful => $F, in_voicemail => $F } },
);

# about 60 % inbound; weights are calls per round of 24
our %DEFAULT_MIX = (
    in_action_required => 3, in_no_action => 3, in_qualified => 2,
    in_resolved => 2, in_voicemail => 1, in_transfer => 2, in_collected => 1,
    out_interested => 3, out_not_interested => 3, out_transfer => 1,
    out_voicemail => 1, out_no_answer => 2,
);

sub scenarios { return sort keys %SCENARIO }

# -- the ticket rules (SPEC section 5), on merged facts

sub bool_of {      # JSON booleans and "true"/"false" in any case, trimmed
    my ($v) = @_;
    return undef unless defined $v;
    return $v ? 1 : 0 if JSON::PP::is_bool($v);
    return 1 if $v =~ /^\s*true\s*$/i;
    return 0 if $v =~ /^\s*false\s*$/i;
    return undef;
}

# (status, email reason or undef)
sub rules {
    my ($dir, $f) = @_;
    my $ar = $f->{ar_analysis} // $f->{ar_collected};
    return ('new', 'call_transfer') if $f->{transferred};
    return ('new', 'action_required') if $ar;
    return ('closed', undef) if $dir eq 'outbound' || defined $ar;
    return ('new', undef) unless $f->{analyzed};
    return ('qualified', undef) if $f->{qualified};
    return ($f->{successful} ? 'resolved' : 'contacted', undef);
}

# the facts of a set of applied deliveries, merged as retell.apply_webhook
# does: flags only go to true, the analysis value of action_required wins,
# a late "ongoing" does not reopen a call
sub merge_facts {
    my (@facts) = @_;
    my %m = (transferred => 0, analyzed => 0);
    for my $f (@facts) {
        $m{transferred} ||= $f->{transferred};
        $m{analyzed} ||= $f->{analyzed};
        for my $k (qw(ar_analysis ar_collected qualified successful)) {
            $m{$k} = $f->{$k} if defined $f->{$k};
        }
        $m{call_status} = $f->{call_status}
            if !defined $m{call_status} || $m{call_status} eq 'ongoing';
    }
    $m{action_required} = $m{ar_analysis} // $m{ar_collected};
    return \%m;
}

# -- generating the calls

sub e164 { (my $n = $_[0]) =~ s/[^+\d]//g; return $n }

sub make_deliveries {
    my (%o) = @_;
    my %mix = %{ $o{mix} // \%DEFAULT_MIX };
    $SCENARIO{$_} or die "Load: unknown scenario $_" for keys %mix;
    # a fixed, interleaved order: each round takes every scenario its
    # weight's times, spread over the round
    my @round = map { $_->[1] } sort { $a->[0] <=> $b->[0] || $a->[1] cmp $b->[1] }
                map { my $s = $_; map { [ ($_ + 0.5) / $mix{$s}, $s ] } 0 .. $mix{$s} - 1 }
                grep { $mix{$_} > 0 } sort keys %mix;
    @round or die "Load: empty mix";
    my $now = Retell::now_ms();
    my $customers = $o{customers} // int($o{calls} * 2 / 3) || 1;
    my @deliveries;
    for my $i (0 .. $o{calls} - 1) {
        my $name = $round[$i % @round];
        my $sc = $SCENARIO{$name};
        my $id = sprintf '%s%05d', $o{prefix}, $i;
        my $outbound = $sc->{dir} eq 'outbound';
        # repeat customers: the last third of the calls are from numbers
        # seen earlier in the run
        my $k = $i % $customers;
        my $phone = $outbound ? sprintf('+1 510 555 %04d', 2000 + $k)
                              : sprintf('+1 (415) 555-%04d', 1000 + $k);
        my $start = $now - ($o{calls} - $i) * 60_000;
        my $reason = $sc->{reason} // 'user_hangup';
        my $status = $sc->{status} // 'ended';
        my %base = ($outbound ? (outbound => 1, to_number => $phone)
                              : (inbound => 1, from_number => $phone),
                    start_timestamp => $start, metadata => { run => $o{prefix} },
                    retell_llm_dynamic_variables => { customer_name => "Customer $k" });
        my %ended = (%base, call_status => $status,
                     end_timestamp => $start + 95_000,
                     duration_ms => $status eq 'ended' ? 95_000 : 0,
                     disconnection_reason => $reason,
                     $reason eq 'call_transfer' ? (transfer_destination => '+14155550111') : (),
                     $status eq 'ended' ? (transcript => "Agent: Hello.\nUser: Call $i here.\n",
                                           recording_url => "https://example.test/$id.wav") : (),
                     $sc->{collected} ? (collected_dynamic_variables => $sc->{collected}) : ());
        my $transferred = ($reason eq 'call_transfer' || $reason eq 'transfer_bridged') ? 1 : 0;
        my $collected = bool_of(($sc->{collected} // {})->{action_required});
        my $cad = $sc->{analysis}{custom_analysis_data} // {};
        my %call = (
            call_started  => [ { %base, call_status => 'ongoing' },
                               { call_status => 'ongoing' } ],
            call_ended    => [ \%ended,
                               { call_status => $status, transferred => $transferred,
                                 ar_collected => $collected } ],
            call_analyzed => [ { %ended, call_analysis => { call_summary => "Call $i.",
                                                            user_sentiment => 'Neutral',
                                                            %{ $sc->{analysis} } } },
                               { call_status => $status, transferred => $transferred,
                                 ar_collected => $collected, analyzed => 1,
                                 ar_analysis => bool_of($cad->{action_required}),
                                 qualified => bool_of($cad->{qualified})
                                              || bool_of($cad->{lead_qualified}) ? 1 : undef,
                                 successful => bool_of($sc->{analysis}{call_successful}) } ],
        );
        my @events = @{ $sc->{events} // [qw(call_started call_ended call_analyzed)] };
        my ($st, $email) = rules($sc->{dir}, merge_facts(map { $call{$_}[1] } @events));
        for my $ev (@events) {
            my $body = Retell::event_body($ev, $id, %{ $call{$ev}[0] });
            push @deliveries, {
                call_id => $id, event => $ev, seq => scalar @deliveries,
                path => $outbound ? $o{out} : $o{in},
                body => $body, sha256 => Digest::SHA::sha256_hex($body),
                expected => { scenario => $name, direction => $sc->{dir},
                              status => $st, email => $email,
                              phone_e164 => e164($phone),
                              facts => $call{$ev}[1] },
            };
        }
    }
    return \@deliveries;
}

# -- sending

# senders not waited for yet: a test that dies mid-load must not leave
# them sending
my %running;
my $owner = $$;

END {
    if ($$ == $owner && %running) {
        local $?;
        kill 'TERM', keys %running;
        waitpid $_, 0 for keys %running;
    }
}

# one POST, HTTP/1.0, a new connection each time as a webhook sender does:
# { sent, answered, status (0 when no HTTP answer), body, port }
sub attempt {
    my ($port, $d, $timeout) = @_;
    my $sent = Time::HiRes::time();
    my $deadline = $sent + $timeout;
    my $fail = sub { return { sent => $sent, answered => Time::HiRes::time(),
                              status => 0, body => $_[0], port => $port } };
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                     Timeout => $timeout)
        or return $fail->("connect: $!");
    my $body = $d->{body};
    my $req = "POST $d->{path} HTTP/1.0\r\nHost: localhost\r\n"
            . "Content-Type: application/json\r\n"
            . "X-Retell-Signature: " . Retell::sign($body) . "\r\n"
            . "Content-Length: " . length($body) . "\r\n\r\n" . $body;
    while (length $req) {
        my $n = syswrite $sock, $req;
        return $fail->("write: $!") unless defined $n;
        substr($req, 0, $n) = '';
    }
    my ($resp, $sel) = ('', IO::Select->new($sock));
    while (1) {
        my $left = $deadline - Time::HiRes::time();
        return $fail->("timeout after ${timeout}s") if $left <= 0;
        next unless $sel->can_read($left);
        my $n = sysread $sock, $resp, 65536, length $resp;
        next if !defined $n && $! == Errno::EINTR;
        return $fail->("read: $!") unless defined $n;
        last if $n == 0;
    }
    close $sock;
    my ($status) = $resp =~ m{\AHTTP/1\.\d (\d{3})}
        or return $fail->("no HTTP answer: " . substr($resp, 0, 80));
    my ($content) = $resp =~ /\r\n\r\n(.*)\z/s;
    return { sent => $sent, answered => Time::HiRes::time(),
             status => $status + 0, body => $content // '', port => $port };
}

# One sender: its deliveries are sent in order, first attempts one after
# the other; a failed one is retried when its delay is due, before the
# next first attempt (Retell does not hold a call's later events back, so
# a retried call_ended may arrive after call_analyzed)
sub sender {
    my ($o, $mine) = @_;
    my @fresh = @$mine;
    my @retry;      # [due, delivery]
    while (@fresh || @retry) {
        @retry = sort { $a->[0] <=> $b->[0] } @retry;
        my $now = Time::HiRes::time();
        # the next first attempt is due at once, or at its slot when paced
        my $fresh_at = @fresh ? $fresh[0]{due} // $now : undef;
        my ($at, $d);
        if (@retry && (!defined $fresh_at || $retry[0][0] <= $fresh_at)) {
            ($at, $d) = @{ shift @retry };
        } else {
            ($at, $d) = ($fresh_at, shift @fresh);
        }
        Time::HiRes::sleep($at - $now) if $at > $now;
        last if Time::HiRes::time() > $o->{give_up_at};
        # several ports: each attempt to one of them, as a load balancer
        # in front of several nginx hosts would send it
        my $port = $o->{ports} ? $o->{ports}[ int rand @{ $o->{ports} } ] : $o->{port};
        my $try = attempt($port, $d, $o->{timeout});
        push @{ $d->{attempts} }, $try;
        # one short line per attempt, O_APPEND: for progress() in the parent
        syswrite $o->{progress_fh}, "$try->{status}\n" if $o->{progress_fh};
        next if is_2xx($try->{status});
        my $delay = $o->{retries}[ @{ $d->{attempts} } - 1 ];
        push @retry, [ $try->{answered} + $delay, $d ] if defined $delay;
    }
}

# start(calls => N, concurrency => N, retries => [s, ...], port => N,
#       ports => [N, ...], mix => { scenario => weight }, timeout => 10,
#       in => '/in', out => '/out', prefix => 'call_...', max_time => 300,
#       rate => N)
# forks the senders and returns at once.  rate: first attempts per second
# over all senders (default: as fast as answers come), so that a fault
# injected mid-run meets fresh deliveries during and after it.  ports:
# every attempt (retries too) goes to one of them, picked at random.
sub start {
    my (%o) = @_;
    $o{calls} //= 100;
    $o{concurrency} //= 8;
    $o{retries} //= [0.5, 1, 2, 4];
    $o{timeout} //= 10;                 # Retell's delivery timeout
    $o{port} //= $ENV{TEST_NGINX_SERVER_PORT} // $ENV{TEST_NGINX_PORT} // 1984;
    $o{in} //= '/in';
    $o{out} //= '/out';
    # distinct call ids per run
    $o{prefix} //= sprintf 'call_load%x%x_', int(Time::HiRes::time() * 1000) % 0xffffffff, $$;
    my $deliveries = make_deliveries(%o);
    my $started = Time::HiRes::time();
    $o{give_up_at} = $started + ($o{max_time} // 300);   # a bound on a broken run
    my $dir = File::Temp::tempdir(CLEANUP => 1);

    # calls, not deliveries, are dealt out: one sender sends all of a call
    my %by_call;
    push @{ $by_call{$_->{call_id}} }, $_ for @$deliveries;
    my @calls = sort keys %by_call;
    my @pids;
    open my $progress, '>>', "$dir/progress" or die "$dir/progress: $!";
    for my $k (0 .. $o{concurrency} - 1) {
        my @mine = map { @{ $by_call{$calls[$_]} } }
                   grep { $_ % $o{concurrency} == $k } 0 .. $#calls;
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            $o{progress_fh} = $progress;
            if ($o{rate}) {     # sender k's j-th delivery: slot j * n + k
                my $n = $o{concurrency};
                $mine[$_]{due} = $started + ($_ * $n + $k) / $o{rate}
                    for 0 .. $#mine;
            }
            # no END blocks nor destructors here: the inherited DBI handle
            # and test state belong to the parent
            $SIG{PIPE} = 'IGNORE';
            srand($$ ^ int(Time::HiRes::time() * 1e6));  # each its own picks
            my $ok = eval {
                sender(\%o, \@mine);
                my $json = JSON::PP->new->canonical->encode(
                    [ map { { seq => $_->{seq}, attempts => $_->{attempts} // [] } } @mine ]);
                open my $fh, '>', "$dir/$k.tmp" or die "$dir/$k.tmp: $!";
                print $fh $json;
                close $fh or die "close: $!";
                rename "$dir/$k.tmp", "$dir/$k.json" or die "rename: $!";
                1;
            };
            print STDERR "Load sender $k: $@" unless $ok;
            POSIX::_exit($ok ? 0 : 1);
        }
        push @pids, $pid;
    }
    $running{$_} = 1 for @pids;
    return bless { pids => \@pids, dir => $dir, deliveries => $deliveries,
                   started => $started, prefix => $o{prefix}, opt => \%o }, __PACKAGE__;
}

# while running: { attempts => N, ok => N (2xx), refused => N (the
# others), STATUS => N ... } over all senders so far
sub progress {
    my ($h) = @_;
    my %n = (attempts => 0, ok => 0, refused => 0);
    open my $fh, '<', "$h->{dir}/progress" or return \%n;
    while (my $line = <$fh>) {
        chomp $line;
        next unless length $line;
        $n{attempts}++;
        $n{$line}++;
        $n{ is_2xx($line) ? 'ok' : 'refused' }++;
    }
    return \%n;
}

# waits for every sender; the results structure
sub wait {
    my ($h) = @_;
    my @failed;
    for my $pid (@{ $h->{pids} }) {
        waitpid $pid, 0;
        delete $running{$pid};
        push @failed, $pid if $? != 0;
    }
    my $finished = Time::HiRes::time();
    die "Load: senders @failed failed" if @failed;
    my @d = @{ $h->{deliveries} };
    for my $f (glob "$h->{dir}/*.json") {
        open my $fh, '<', $f or die "$f: $!";
        local $/;
        for my $r (@{ JSON::PP::decode_json(<$fh>) }) {
            $d[ $r->{seq} ]{attempts} = $r->{attempts};
        }
    }
    for my $d (@d) {
        $d->{attempts} //= [];
        $d->{final} = @{ $d->{attempts} } ? $d->{attempts}[-1]{status} : undef;
    }
    return { prefix => $h->{prefix}, started => $h->{started},
             finished => $finished, deliveries => \@d };
}

# -- checking

# one test: no problems, else the first 25 of them
sub no_problems {
    my ($what, @p) = @_;
    Test::More::ok(!@p, "$what (" . scalar(@p) . " problems)")
        or Test::More::diag(join "\n", @p[0 .. ($#p < 24 ? $#p : 24)],
                            @p > 25 ? ('... ' . (@p - 25) . ' more') : ());
}

sub not_final_200 { return grep { ($_->{final} // 0) != 200 } @{ $_[0]{deliveries} } }

# the refused attempts, grouped by answer, with how long each took
sub show_refused {
    my (@late) = @_;
    my %by;
    push @{ $by{"$_->{status} $_->{body}" =~ s/\s+$//r} }, $_->{answered} - $_->{sent} for @late;
    Test::More::diag(join "\n", map {
        my @t = sort { $a <=> $b } @{ $by{$_} };
        sprintf '  %d x %s (answered in %.2f to %.2f s)', scalar @t, $_, $t[0], $t[-1]
    } sort keys %by) if @late;
}

# how many deliveries reached the database; polled to inject a fault mid-run
sub stored { return Retell::db_value(q{SELECT count(*) FROM retell.webhook_events}) }

sub is_2xx { my $s = shift; return defined $s && $s >= 200 && $s < 300 }

# the attempts refused (non-2xx answer, connection error or timeout) that
# were sent after $t
sub refused_after {
    my ($r, $t) = @_;
    my @out;
    for my $d (@{ $r->{deliveries} }) {
        for my $try (@{ $d->{attempts} }) {
            push @out, { call_id => $d->{call_id}, event => $d->{event}, %$try }
                if !is_2xx($try->{status}) && $try->{sent} > $t;
        }
    }
    return @out;
}

# one line for diag: rates and what was answered
sub summary {
    my ($r) = @_;
    my @d = @{ $r->{deliveries} };
    my (%final, %seen, $n);
    for my $d (@d) {
        $final{ $d->{final} // 'unsent' }++;
        $seen{ $_->{status} }++, $n++ for @{ $d->{attempts} };
    }
    my %calls = map { $_->{call_id} => 1 } @d;
    my $el = $r->{finished} - $r->{started};
    my $fmt = sub { my $h = shift; join ', ', map { "$_ x$h->{$_}" } sort keys %$h };
    return sprintf '%d calls, %d deliveries, %d attempts in %.2f s (%.0f req/s); '
                 . 'final: %s; all answers: %s',
                   scalar keys %calls, scalar @d, $n // 0, $el, ($n // 0) / ($el || 1),
                   $fmt->(\%final), $fmt->(\%seen);
}

# What the product promises, checked in the test database: a list of
# problems, one line each; empty when all is well.
sub check_db {
    my ($r) = @_;
    my @p;
    my $pre = $r->{prefix};
    my $mine = q{left(call_id, length($1)) = $1};
    my %ev;     # sha256 -> [rows]
    push @{ $ev{$_->{sha}} }, $_ for @{ Retell::db_rows(
        qq{SELECT encode(payload_sha256, 'hex') AS sha, call_id, event,
                  applied_at IS NOT NULL AS applied
           FROM retell.webhook_events WHERE $mine}, $pre) };
    my %calls = map { $_->{call_id} => $_ } @{ Retell::db_rows(
        qq{SELECT c.call_id, c.direction, c.call_status, c.analyzed,
                  c.transferred, c.action_required, c.company_id, cu.phone_e164
           FROM retell.calls c LEFT JOIN retell.customers cu ON cu.id = c.customer_id
           WHERE left(c.call_id, length(\$1)) = \$1}, $pre) };
    my %tickets;
    push @{ $tickets{$_->{call_id}} }, $_ for @{ Retell::db_rows(
        qq{SELECT call_id, status, status_source FROM retell.tickets WHERE $mine}, $pre) };
    my %mail;
    push @{ $mail{$_->{call_id}} }, $_ for @{ Retell::db_rows(
        qq{SELECT call_id, reason FROM retell.email_outbox WHERE $mine}, $pre) };

    my (%by_call, %known);
    for my $d (@{ $r->{deliveries} }) {
        push @{ $by_call{$d->{call_id}} }, $d;
        $known{$d->{sha256}} = 1;
        my $what = "$d->{call_id} $d->{event}";
        my @ok = grep { $_->{status} == 200 } @{ $d->{attempts} };
        my $rows = $ev{$d->{sha256}} // [];
        push @p, "$what: answered 200 but no webhook_events row" if @ok && !@$rows;
        push @p, "$what: @{[ scalar @$rows ]} webhook_events rows" if @$rows > 1;
        push @p, "$what: stored but not applied" if @$rows && !$rows->[0]{applied};
        my $applied = grep { $_->{body} =~ /"duplicate":false/ } @ok;
        push @p, "$what: applied $applied times (\"duplicate\":false answers)" if $applied > 1;
        for (@ok) {
            push @p, "$what: a 200 answer for another delivery: $_->{body}"
                unless $_->{body} =~ /"event":"$d->{event}","call_id":"$d->{call_id}"/;
        }
    }
    for my $sha (sort keys %ev) {
        push @p, "webhook_events row for a delivery never sent: $ev{$sha}[0]{call_id} $ev{$sha}[0]{event}"
            unless $known{$sha};
    }

    for my $id (sort keys %by_call) {
        my @d = @{ $by_call{$id} };
        my $x = $d[0]{expected};
        my @applied = grep { my $e = $ev{$_->{sha256}}; $e && $e->[0]{applied} } @d;
        my $all_ok = !grep { !grep { $_->{status} == 200 } @{ $_->{attempts} } } @d;
        my $c = $calls{$id};
        my $t = $tickets{$id} // [];
        my $m = $mail{$id} // [];
        if (!@applied) {
            push @p, "$id: a calls row without any applied event" if $c;
            push @p, "$id: a ticket without any applied event" if @$t;
            push @p, "$id: an email without any applied event" if @$m;
            next;
        }
        my $f = merge_facts(map { $_->{expected}{facts} } @applied);
        my ($status, $email) = rules($x->{direction}, $f);
        my $of = join ',', map { $_->{event} } @applied;
        # a call whose every delivery got its 200 must show the scenario's
        # outcome; one missing events shows what its applied events say
        push @p, "$id: all deliveries answered 200 but applied only $of"
            if $all_ok && @applied != @d;
        ($status, $email) = ($x->{status}, $x->{email}) if $all_ok;
        if (!$c) {
            push @p, "$id: no calls row (applied: $of)";
        } else {
            my %want = (direction => $x->{direction}, call_status => $f->{call_status},
                        analyzed => $f->{analyzed} ? 1 : 0,
                        transferred => $f->{transferred} ? 1 : 0,
                        action_required => $f->{action_required},
                        company_id => 1, phone_e164 => $x->{phone_e164});
            for my $k (sort keys %want) {
                my ($got, $exp) = ($c->{$k}, $want{$k});
                next if !defined $got && !defined $exp;
                push @p, "$id: calls.$k is @{[ $got // 'NULL' ]}, expected @{[ $exp // 'NULL' ]} (applied: $of)"
                    if !defined $got || !defined $exp || $got ne $exp;
            }
        }
        if (@$t != 1) {
            push @p, "$id: @{[ scalar @$t ]} tickets (applied: $of)";
        } elsif ($t->[0]{status} ne $status) {
            push @p, "$id: ticket $t->[0]{status}, the rules say $status ($x->{scenario}, applied: $of)";
        }
        my $mails = join ',', map { $_->{reason} } @$m;
        push @p, "$id: emails [$mails], expected [@{[ $email // '' ]}] ($x->{scenario}, applied: $of)"
            if $mails ne ($email // '');
    }
    for my $id (sort keys %tickets) {
        push @p, "$id: a ticket for a call never sent" unless $by_call{$id};
    }
    for my $id (sort keys %calls) {
        push @p, "$id: a calls row for a call never sent" unless $by_call{$id};
    }
    return @p;
}

1;
