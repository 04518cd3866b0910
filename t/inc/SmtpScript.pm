package SmtpScript;

# t/smtp-script from the tests: a scriptable, hostile SMTP server (see
# "t/smtp-script --help-script" for the script format and the modes).
#
#   use SmtpScript;
#   my $dir = smtp_script_start(mode => 'inject-full', sessions => '1',
#                               tls => 1);
#   my $dir = smtp_script_start(script => {
#       ehlo => { sessions => 1, drip => { interval => 2, lines => 20 } },
#       auth_users => { mailer => 's3cret-pass' } }, tls => 1);
#   ... nginx sends ...
#   my $sessions = smtp_script_wait_sessions($dir, 2);   # sessions.jsonl
#   my $messages = smtp_script_messages($dir);           # NNNNNN.json
#   smtp_script_stop();
#
# JSON true/false in a script: \1 and \0 (or JSON::PP::true / false); a
# number where the format allows one (silent, drip) means seconds.

use strict;
use warnings;
use Exporter 'import';
use File::Temp ();
use JSON::PP ();
use POSIX ();
use Time::HiRes ();
use Retell ();

our @EXPORT = qw(smtp_script_start smtp_script_stop smtp_script_sessions
                 smtp_script_wait_sessions smtp_script_messages
                 smtp_script_by_message_id smtp_script_log smtp_script_cert
                 $SMTP_SCRIPT_PORT);

# the sink's port by default: the same smtp_http_config() works for both
our $SMTP_SCRIPT_PORT = $ENV{TEST_NGINX_SMTP_SCRIPT_PORT} // $Retell::SMTP_PORT;

my %servers;    # port => { pid, dir, base }
my %base_of;    # dir => base (the log is there)
my @cert;       # made once per test process

# a self-signed certificate for localhost (as t/060-smtp.t makes it):
# returns (cert, key)
sub smtp_script_cert {
    return @cert if @cert;
    my $d = File::Temp::tempdir(CLEANUP => 1);
    my ($crt, $key) = ("$d/localhost.crt", "$d/localhost.key");
    system("openssl req -x509 -newkey rsa:2048 -nodes -days 2"
           . " -subj /CN=localhost -addext subjectAltName=DNS:localhost"
           . " -keyout $key -out $crt 2>/dev/null") == 0
        or die "openssl req failed";
    @cert = ($crt, $key);
    return @cert;
}

# smtp_script_start(
#     mode => NAME,                  # or
#     script => { ... } | 'file.json',
#     port => N,                     # $SMTP_SCRIPT_PORT
#     tls => 1 | [cert, key],        # offer STARTTLS (1: smtp_script_cert)
#     sessions => SPEC,              # --mode-sessions: "1", "1-3", "2-"
#     drip_interval => S, drip_lines => N, inject => BYTES,
#     inject_rcpts => N, match => REGEX, auth => 'user:password',
#     require_tls => 1, require_auth => 1, hostname => NAME,
#     args => [ more command line ])
# returns the folder with NNNNNN.eml/.json and sessions.jsonl, once the
# server listens.  Any server (sink or script) on that port is stopped first.
sub smtp_script_start {
    my (%o) = @_;
    my $port = delete $o{port} // $SMTP_SCRIPT_PORT;
    smtp_script_stop($port);
    Retell::smtp_stop($port);
    my $base = File::Temp::tempdir(CLEANUP => 1);
    my $dir = "$base/mail";
    my @args = ('--port', $port, '--dir', $dir,
                '--ready-file', "$base/ready");
    if (my $tls = delete $o{tls}) {
        my ($crt, $key) = ref $tls ? @$tls : smtp_script_cert();
        push @args, '--tls-cert', $crt, '--tls-key', $key;
    }
    if (defined(my $m = delete $o{mode})) {
        push @args, '--mode', $m;
    }
    if (defined(my $s = delete $o{script})) {
        push @args, ref $s
            ? ('--script-json', JSON::PP->new->canonical->encode($s))
            : ('--script', $s);
    }
    my $ms = delete $o{sessions};
    $o{mode_sessions} //= $ms;
    my $extra = delete $o{args} // [];
    for my $k (sort keys %o) {
        (my $flag = $k) =~ tr/_/-/;
        my $v = $o{$k};
        next if !defined $v;
        if ($k =~ /^require_(tls|auth)$/) {
            push @args, "--$flag" if $v;
        } else {
            push @args, "--$flag", $v;
        }
    }
    push @args, @$extra;

    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>>', "$base/server.log";
        exec "$Retell::REPO/t/smtp-script", @args
            or die "exec t/smtp-script: $!";
    }
    my $ok = Retell::wait_for(sub {
        -s "$base/ready" || waitpid($pid, POSIX::WNOHANG()) == $pid
    }, 15);
    unless ($ok && -s "$base/ready") {
        kill 'KILL', $pid;
        waitpid $pid, 0;
        die "t/smtp-script did not start (@args):\n"
            . _slurp("$base/server.log");
    }
    $servers{$port} = { pid => $pid, dir => $dir, base => $base };
    $base_of{$dir} = $base;
    return $dir;
}

# stops the server on that port, or all; returns their exit codes
sub smtp_script_stop {
    my ($port) = @_;
    my @rc;
    for my $p (defined $port ? ($port) : sort keys %servers) {
        my $s = delete $servers{$p} or next;
        kill 'TERM', $s->{pid};
        my $deadline = Time::HiRes::time() + 10;
        while (waitpid($s->{pid}, POSIX::WNOHANG()) == 0) {
            if (Time::HiRes::time() > $deadline) {
                kill 'KILL', $s->{pid};
                waitpid $s->{pid}, 0;
                last;
            }
            Time::HiRes::sleep(0.02);
        }
        push @rc, $? >> 8;
    }
    return @rc;
}

END { local $?; smtp_script_stop() }    # keep the test's exit status

# sessions.jsonl: one hash per ended session, by session number
sub smtp_script_sessions {
    my ($dir) = @_;
    my @s;
    for my $line (split /\n/, _slurp("$dir/sessions.jsonl")) {
        next unless $line =~ /\S/;
        my $r = eval { JSON::PP::decode_json($line) } or next;  # a partial
        push @s, $r;                                              # last line
    }
    return [ sort { $a->{session} <=> $b->{session} } @s ];
}

# waits (15 s by default) until at least $n sessions have ended
sub smtp_script_wait_sessions {
    my ($dir, $n, $timeout) = @_;
    Retell::wait_for(sub { @{ smtp_script_sessions($dir) } >= $n },
                     $timeout // 15);
    return smtp_script_sessions($dir);
}

# the stored messages: [{ envelope fields..., eml => path }], oldest first
sub smtp_script_messages {
    my ($dir) = @_;
    my @out;
    for my $json (sort glob "$dir/[0-9]*.json") {
        my $m = eval { JSON::PP::decode_json(_slurp($json)) } or next;
        ($m->{eml} = $json) =~ s/\.json$/.eml/;
        push @out, $m;
    }
    return \@out;
}

# { Message-ID => how many times it was stored }
sub smtp_script_by_message_id {
    my ($dir) = @_;
    my %n;
    $n{ $_->{message_id} // '?' }++ for @{ smtp_script_messages($dir) };
    return \%n;
}

# what the server logged (one line per event), for diag()
sub smtp_script_log {
    my ($dir) = @_;
    my $base = $base_of{$dir} // "$dir/..";
    return _slurp("$base/server.log");
}

sub _slurp {
    open my $fh, '<', $_[0] or return '';
    local $/;
    return scalar <$fh>;
}

1;
