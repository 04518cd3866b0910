package Test::Nginx::Socket;

# Minimal stand-in for the CPAN Test::Nginx::Socket (openresty/test-nginx),
# implementing the subset of sections our t/*.t use, on top of Test::Base and
# core Perl.  Test names and messages mirror the real module so that `prove`
# output and plans are identical.  See t/lib/Test/Nginx/Util.pm for the
# nginx management side.

use strict;
use warnings;

use Test::Base -base;    # like the real one: a Test::Base subclass
use Test::Nginx::Util;
use IO::Socket::INET;
use IO::Select;
use POSIX qw(EAGAIN EINTR);
use List::Util qw(min);
use Time::HiRes qw(sleep time);

our $VERSION = '0.29';

our @EXPORT = qw( env_to_nginx is_str plan run_tests run_test
  repeat_each config_preamble worker_connections
  master_process_enabled
  no_long_string workers master_on master_off
  log_level no_shuffle no_root_location use_hup
  server_name
  server_addr server_root html_dir server_port server_port_for_client
  timeout no_nginx_manager check_accum_error_log
  add_block_preprocessor bail_out add_cleanup_handler
  add_response_body_check
);

# How long --- error_log keeps re-reading error.log for lines that nginx
# writes a little after the response (the real module only sleeps 45ms).
our $ErrLogPollTime = 1;

our @ResponseBodyChecks;

$Test::Nginx::Util::RunTestHelper = \&run_test_helper;
$Test::Nginx::Util::CheckErrorLog = \&check_error_log;

sub add_response_body_check ($) { push @ResponseBodyChecks, shift }
sub set_http_config_filter ($)  { $Test::Nginx::Util::FilterHttpConfig = shift }

sub fmt_str {
    my $str = shift;
    chomp $str;
    $str =~ s/"/\\"/g; $str =~ s/\r/\\r/g; $str =~ s/\n/\\n/g;
    $str;
}

sub no_ending { Test::More->builder->no_ending(1) }

# ---------------------------------------------------------------- requests

# "Name: value" lines -> CRLF header block; also tells whether the request
# body is chunked (then no Content-Length is added).
sub parse_more_headers {
    my ($out, $is_chunked) = ('', 0);
    for my $header (split /\n+/, shift) {
        next if $header =~ /^\s*\#/;
        my ($key, $val) = split /:\s*/, $header, 2;
        $val //= '';
        $is_chunked = 1 if lc($key) eq 'transfer-encoding' && $val eq 'chunked';
        $out .= "$key: $val\r\n";
    }
    return ($out, $is_chunked);
}

# "METHOD [/uri [HTTP/x.y]]\nbody" -> full HTTP request, with Host,
# Connection and (for non-empty bodies) Content-Length added.  $packets is a
# list of {value, delay_before}; packet boundaries after the first one are
# kept when the body is not rewritten across them.
sub build_request {
    my ($name, $more_headers, $is_chunked, $conn, $packets) = @_;
    my $full = join '', map { $_->{value} // '' } @$packets;
    my ($first, $content) = $full =~ /\A([^\n]*\n?)(.*)\z/s;
    bail_out("$name - Request line should be non-empty") if $first eq '';
    $first =~ /^\s*(\S+) *(?:(\S+) *)?(?:(\S+) *)?\s*$/
        or bail_out("$name - Request line is not valid. Should be 'meth [url [version]]' but got \"$first\".");
    my ($meth, $url, $ver) = ($1, $2 // '/', $3 // 'HTTP/1.1');

    my $len_header = '';
    if (!$is_chunked && $content ne '' && $more_headers !~ /(?:^|\n)Content-Length:/) {
        $content =~ s/^\s+|\s+$//gs;
        $len_header = "Content-Length: " . length($content) . "\r\n";
    }
    $more_headers =~ s/(?<!\r)\n/\r\n/gs;
    my $headers = '';
    $headers .= "Host: $ServerName\r\n" if $more_headers !~ /(?:^|\n)Host:/msi;
    $headers .= "Connection: $conn\r\n" if $more_headers !~ /(?:^|\n)Connection/msi;
    my $req = "$meth $url $ver\r\n$headers$more_headers$len_header\r\n$content";

    my @rest = @$packets[1 .. $#$packets];
    my $tail = join '', map { $_->{value} // '' } @rest;
    if (@rest && length($req) >= length($tail) && substr($req, -length $tail) eq $tail) {
        return [{ %{ $packets->[0] }, value => substr($req, 0, length($req) - length $tail) }, @rest];
    }
    return [{ value => $req }];
}

sub to_packets {
    my ($name, $req) = @_;
    return [{ value => $req }] unless ref $req;
    bail_out("$name - Invalid syntax. $req should be a string or an array of packets.")
        unless ref $req eq 'ARRAY';
    return [ map { ref $_ eq 'HASH' ? {%$_} : { value => $_ } } @$req ];
}

# Returns a list of requests, each a list of packets {value, delay_before}.
sub get_req_from_block {
    my $block = shift;
    my $name = $block->name;

    if (defined(my $raw = $block->raw_request)) {
        return [ ref $raw eq 'ARRAY' ? [ map { { value => $_ } } @$raw ] : [{ value => $raw }] ];
    }

    my $more = $block->more_headers // '';
    my $headers_for = sub {
        my $i = shift;
        return parse_more_headers($more) unless ref $more eq 'ARRAY';
        my $hdr = $more->[$i];
        bail_out("--- more_headers lacks data for the ${i}th request") unless defined $hdr;
        return parse_more_headers($hdr);
    };

    if (my $reqs = $block->pipelined_requests) {
        bail_out("$name - invalid entries in --- pipelined_requests") unless ref $reqs eq 'ARRAY';
        my $all = '';
        for my $i (0 .. $#$reqs) {
            my $conn = $i == $#$reqs ? 'close' : 'keep-alive';
            $all .= build_request($name, $headers_for->($i), $conn, [{ value => $reqs->[$i] }])->[0]{value};
        }
        return [[{ value => $all }]];
    }

    my $request = $block->request;
    if (defined $request && !ref $request) {
        1 while $request =~ s/^\s*\#[^\n]+\s+|^\s+//gs;    # leading comments
    }
    bail_out("$name - invalid ---request : MUST be string or array of requests")
        if ref $request && ref $request ne 'ARRAY';
    my @reqs = ref $request ? @$request : ($request);
    return [ map { build_request($name, $headers_for->($_), 'close', to_packets($name, $reqs[$_])) }
             0 .. $#reqs ];
}

# Send one request (list of packets) and read until the server closes.
# $timeout bounds the wait between two I/O events, as in the real module.
sub send_request ($$$$) {
    my ($packets, $middle_delay, $timeout, $block) = @_;
    my $name = $block->name;
    my @bits = @$packets;
    my $head_req = (join '', map { $_->{value} } @bits) =~ /^\s*HEAD\s+/ ? 1 : 0;
    my $addr = $block->server_addr_for_client // $ServerAddr;

    my $sock;
    for my $try (1 .. 20) {
        $sock = IO::Socket::INET->new(PeerAddr => $addr, PeerPort => $ServerPortForClient,
                                      Proto => 'tcp', Timeout => $timeout) and last;
        my $err = $!;
        warn "$name - Can't connect to $addr:$ServerPortForClient: $err\n" if $try >= 10;
        sleep min(0.5, 0.01 * $try * $try);
        $! = $err;
    }
    if (!$sock) {
        no_ending();
        fail("$name - Can't connect to $addr:$ServerPortForClient: $! (aborted)\n");
        return;
    }
    $sock->blocking(0);
    local $SIG{PIPE} = 'IGNORE';

    my ($resp, $buf, $off, $writing) = ('', (shift @bits)->{value}, 0, 1);
    my $sel = IO::Select->new($sock);
    while (1) {
        $! = 0;
        my ($readable, $writable) = IO::Select->select($sel, $writing ? $sel : undef, undef, $timeout);
        if (!$readable && !$writable) {
            next if $! == EINTR;
            close $sock;
            if (!defined $block->abort) {
                no_ending();
                fail("ERROR: client socket timed out - $name\n");
            } else {
                sleep 0.005;
            }
            last;
        }
        if ($writable && @$writable) {
            my $n = syswrite($sock, $buf, length($buf) - $off, $off);
            if (!defined $n) {
                next if $! == EAGAIN;
                warn "write failed: $!\n";
                $resp = "write failed: $!" if $resp eq '';
                last;
            }
            $off += $n;
            if ($off >= length $buf) {
                if (my $next = shift @bits) {
                    my $delay = $next->{delay_before} // $middle_delay;
                    sleep $delay if $delay;
                    ($buf, $off) = ($next->{value}, 0);
                } else {
                    $writing = 0;
                    if (defined(my $how = $block->shutdown)) {
                        shutdown($sock, $how =~ /^$/s ? 1 : $how);
                    }
                }
            }
        }
        if ($readable && @$readable) {
            my $n = sysread($sock, my $chunk, 4096);
            if (!defined $n) {
                next if $! == EAGAIN;
                warn "WARNING: $name - HTTP response read failure: $!";
                last;
            }
            last if $n == 0;
            $resp .= $chunk;
        }
    }
    close $sock;
    return ($resp, $head_req);
}

# --------------------------------------------------------------- responses

# Just enough of HTTP::Response for the checks below.
{
    package Test::Nginx::Socket::Response;
    sub new     { my ($class, %a) = @_; bless { headers => [], content => '', %a }, $class }
    sub code    { my $s = shift; $s->{code} = shift if @_; $s->{code} }
    sub content { my $s = shift; $s->{content} = shift if @_; $s->{content} }
    sub header {    # case-insensitive; repeated headers joined by ", "
        my ($s, $key) = @_;
        ($key = lc $key) =~ tr/_/-/;
        my @v = map { $_->[1] } grep { $_->[0] eq $key } @{ $s->{headers} };
        return @v ? join(', ', @v) : undef;
    }
}

# Same splitting rules as HTTP::Response->parse.
sub parse_http_message {
    my $str = shift;
    my $status = $str =~ s/^(.*)\n// ? $1 : do { my $s = $str; $str = ''; $s };
    $status =~ s/\r\z//;
    my @hdr;
    while (1) {
        if ($str =~ s/^([^\s:]+)[ \t]*: ?(.*)\n?//) {
            push @hdr, [lc($1) =~ tr/_/-/r, $2];
        } elsif (@hdr && $str =~ s/^([ \t].*)\n?//) {
            $hdr[-1][1] .= "\n$1";
        } else {
            $str =~ s/^\r?\n//;
            last;
        }
        $hdr[-1][1] =~ s/\r\z//;
    }
    my $code = $status =~ /^\d{3} / ? (split ' ', $status, 2)[0] : (split ' ', $status, 3)[1];
    $code = undef if defined $code && $code !~ /^\d+$/;
    return Test::Nginx::Socket::Response->new(code => $code, headers => \@hdr, content => $str);
}

# Returns ($res, $raw_headers, $left): body delimited by chunked encoding or
# Content-Length (bytes beyond it are "$left"), else everything until close.
sub parse_response {
    my ($name, $raw, $head_req) = @_;
    my $raw_headers = $raw =~ /(.*?\r\n)\r\n/s ? $1 : '';
    my $res = parse_http_message($raw);
    my $code = $res->code;
    return ($res, $raw_headers) if $code && ($code == 304 || $code == 101);

    my ($enc, $len, $left) = ($res->header('Transfer-Encoding'), $res->header('Content-Length'));
    if (defined $enc && $enc eq 'chunked') {
        my $body = $res->content;
        my $decoded = '';
        while (1) {
            if ($body =~ /\G0[ \t]*\r\n\r\n/gc) {
                $left = $1 if $body =~ /\G(.+)/gcs;
                last;
            }
            if ($body =~ /\G[ \t]*([A-Fa-f0-9]+)[ \t]*\r\n/gc) {
                my ($size, $p) = (hex $1, pos $body);
                if (length($body) - $p < $size) {
                    no_ending();
                    fail("$name - invalid chunked data received (not enought octets for the data section)");
                    return;
                }
                $decoded .= substr $body, $p, $size;
                pos($body) = $p + $size;
                if ($body !~ /\G\r\n/gc) {
                    no_ending();
                    fail("$name - invalid chunked data received (expected CRLF).");
                    return;
                }
            } elsif ($body =~ /\G.+/gcs) {
                no_ending();
                fail("$name - invalid chunked body received: $&");
                return;
            } else {
                no_ending();
                fail("$name - no last chunk found - $body");
                return;
            }
        }
        $res->content($decoded);
    } elsif (defined $len && $len =~ /^\d+$/) {
        my $body = $res->content;
        if (length $body < $len) {
            warn "WARNING: $name - response body truncated: $len expected, but got ",
                length $body, "\n" unless $head_req;
        } elsif (length $body > $len) {
            $left = substr $body, $len;
            $res->content(substr $body, 0, $len);
        }
    }
    return ($res, $raw_headers, $left);
}

# ------------------------------------------------------------------ checks

# Arrayref-valued expectations hold one entry per request.
sub get_indexed_value ($$$$) {
    my ($name, $value, $req_idx, $need_array) = @_;
    if ($need_array) {
        return $value->[$req_idx] if ref $value eq 'ARRAY';
        bail_out("$name - You asked for many requests, the expected results should be arrays as well.");
    }
    return ref $value eq 'ARRAY' ? $value->[0] : $value;
}

sub check_error_code {
    my ($block, $res, $req_idx, $need_array) = @_;
    my $name = $block->name;
    my $got = ($res && $res->code) || '';
    if (defined $block->error_code_like) {
        my $val = get_indexed_value($name, $block->error_code_like, $req_idx, $need_array);
        like($got, qr/$val/sm, "$name - status code ok");
    } elsif (defined $block->error_code) {
        is($got, get_indexed_value($name, $block->error_code, $req_idx, $need_array),
           "$name - status code ok");
    } else {
        is($got, 200, "$name - status code ok");
    }
}

sub check_response_headers {
    my ($block, $res, $raw_headers, $req_idx, $need_array) = @_;
    my $name = $block->name;
    for my $kind (qw(like unlike)) {
        my $section = "raw_response_headers_$kind";
        my $pat = $block->$section;
        next unless defined $pat;
        $pat = get_indexed_value($name, $pat, $req_idx, $need_array);
        no strict 'refs';
        &{"Test::More::$kind"}($raw_headers, qr/$pat/s, "$name - raw resp headers $kind");
    }

    if (defined $block->response_headers) {
        my $headers = parse_headers(get_indexed_value($name, $block->response_headers, $req_idx, $need_array));
        for my $key (sort keys %$headers) {
            my $val = $headers->{$key};
            if (!defined $val) {
                unlike($raw_headers, qr/^\s*\Q$key\E\s*:/ms,
                       "$name - header $key not present in the raw headers");
                next;
            }
            $val =~ s/\$ServerPort\b/$ServerPort/g;
            $val =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
            my $actual = $res ? $res->header($key) : undef;
            is($actual // '', $val, "$name - header $key ok");
        }
    } elsif (defined $block->response_headers_like) {
        my $headers = parse_headers(get_indexed_value($name, $block->response_headers_like, $req_idx, $need_array));
        for my $key (sort keys %$headers) {
            my $val = $headers->{$key} // '';
            my $actual = $res ? $res->header($key) : undef;
            like($actual // '', qr/^$val$/, "$name - header $key like ok");
        }
    }
}

my %BodyFilters = (
    md5_hex  => sub { require Digest::MD5; Digest::MD5::md5_hex($_[0]) },
    sha1_hex => sub { require Digest::SHA; Digest::SHA::sha1_hex($_[0]) },
    uc => sub { uc $_[0] }, lc => sub { lc $_[0] }, length => sub { length $_[0] },
    ucfirst => sub { ucfirst $_[0] }, lcfirst => sub { lcfirst $_[0] },
);

sub transform_response_body {
    my ($block, $res, $req_idx) = @_;
    my $filters = $block->response_body_filters;
    return unless $res && defined $res->content && defined $filters;
    my $name = $block->name;
    if (!ref $filters) {
        $filters =~ s/^\s+|\s+$//gs;
        $filters = [split /\s+/, $filters];
    }
    if (ref $filters eq 'ARRAY' && ref $filters->[0] eq 'ARRAY') {    # one list per request
        $filters = $filters->[$req_idx]
            // bail_out("$name - the ---response_body_filters two-dimensional array unmatch the specified request($req_idx)");
    }
    my $content = $res->content;
    for my $f (ref $filters eq 'ARRAY' ? @$filters : $filters) {
        if (ref $f eq 'CODE') { $content = $f->($content) }
        elsif (!ref $f && $BodyFilters{$f}) { $content = $BodyFilters{$f}->($content) }
        else { bail_out("$name - unknown filter, \"$f\", specified in the --- response_body_filters section") }
    }
    $res->content($content);
}

sub check_response_body {
    my ($block, $res, $dry_run, $req_idx, $repeated_req_idx, $need_array) = @_;
    my $name = $block->name;
    my $content = $res ? $res->content : undef;
    if (defined $block->response_body) {
        my $expected = get_indexed_value($name, $block->response_body, $req_idx, $need_array);
        if (defined $expected && !ref $expected) {
            $expected =~ s/\$ServerPort\b/$ServerPort/g;
            $expected =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        }
        if (ref $expected) {
            like($content, $expected, "$name - response_body - like (repeated req $repeated_req_idx, req $req_idx)");
        } else {
            is($content, $expected,
               "$name - response_body - response is expected (repeated req $repeated_req_idx, req $req_idx)");
        }
    } elsif (defined $block->response_body_like || defined $block->response_body_unlike) {
        my $type = defined $block->response_body_like ? 'like' : 'unlike';
        my $section = "response_body_$type";
        my $pat = get_indexed_value($name, $block->$section, $req_idx, $need_array);
        $pat =~ s/\$ServerPort\b/$ServerPort/g;
        $pat =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        my $summary = trim($content) // '';
        no strict 'refs';
        &{"Test::More::$type"}($content, qr/$pat/s,
            "$name - response_body_$type - response is expected ($summary)");
    }
    for my $check (@ResponseBodyChecks) {
        $check->($block, $content, $req_idx, $repeated_req_idx, $dry_run);
    }
}

# ------------------------------------------------------------- log checks

sub value_contains {
    my ($val, $pat) = @_;
    return $val =~ /\Q$pat\E/ if !ref $val || ref $val eq 'Regexp';
    if (ref $val eq 'ARRAY') { value_contains($_, $pat) and return 1 for @$val }
    return undef;
}

# section value -> list of patterns: lines of a string, a qr//, or an array
sub norm_pats {
    my $pats = shift;
    if (!ref $pats) { chomp $pats; return split /\n+/, $pats }
    return ref $pats eq 'Regexp' ? ($pats) : @$pats;
}

sub line_matches {
    my ($line, $pat) = @_;
    return ref $pat ? $line =~ /$pat/ : $line =~ /\Q$pat\E/;
}

# Every pattern must match some line.  $more (error.log only) fetches lines
# written since, polled for a bounded time before reporting failures.
sub check_log_present {
    my ($name, $pats, $lines, $file, $idx, $more) = @_;
    my @pats = norm_pats($pats);
    my $scan = sub {
        for my $line (@{ $_[0] }) {
            for my $pat (@pats) {
                next unless defined $pat && line_matches($line, $pat);
                pass("$name - pattern \"$pat\" matches a line in $file (req $idx)");
                undef $pat;
            }
        }
    };
    $scan->($lines);
    if ($more) {
        my $deadline = time + $ErrLogPollTime;
        while (grep(defined, @pats) && time < $deadline) {
            sleep 0.05;
            my $new = $more->();
            push @$lines, @$new;
            $scan->($new);
        }
    }
    fail("$name - pattern \"$_\" should match a line in $file (req $idx)") for grep defined, @pats;
}

sub check_log_absent {
    my ($name, $pats, $lines, $file, $idx) = @_;
    my @pats = norm_pats($pats);
    my %found;
    for my $i (0 .. $#$lines) {
        my $line = $lines->[$i];
        for my $pat (@pats) {
            next unless defined $pat && line_matches($line, $pat);
            no_ending() if $found{$pat}++;
            my @more = @$lines[$i + 1 .. min($i + 9, $#$lines - 1)];
            fail("$name - pattern \"" . fmt_str($pat) . "\" should not match any line in $file but matches line \""
                 . fmt_str($line) . "\" (req $idx)\n" . join '', @more);
        }
    }
    for my $pat (@pats) {
        next if !defined $pat || $found{$pat};
        pass("$name - pattern \"" . fmt_str($pat) . "\" does not match a line in $file (req $idx)");
    }
}

sub check_error_log {
    my ($block, $res, $dry_run, $idx, $need_array) = @_;
    my $name = $block->name;
    my $lines;
    my %warn_levels = map { $_ => 1 } qw(alert crit emerg);

    if (defined(my $grep_pat = $block->grep_error_log)) {
        $grep_pat = $grep_pat->[$idx] if ref $grep_pat eq 'ARRAY';
        my $expected = $block->grep_error_log_out;
        if (defined $grep_pat) {
            bail_out("$name - No --- grep_error_log_out defined but --- grep_error_log is defined")
                unless defined $expected;
            $expected = $expected->[$idx] if ref $expected eq 'ARRAY';
            $lines ||= error_log_data();
            my $out = '';
            for my $line (@$lines) {
                if (ref $grep_pat && $line =~ /$grep_pat/ || $line =~ /\Q$grep_pat\E/) {
                    $out .= "$&\n" if $& !~ /\n/;
                }
            }
            ref $expected eq 'Regexp'
                ? like($out, $expected, "$name - grep_error_log_out (req $idx)")
                : is($out, $expected, "$name - grep_error_log_out (req $idx)");
        }
    } elsif (defined $block->grep_error_log_out) {
        bail_out("$name - No --- grep_error_log defined but --- grep_error_log_out is defined");
    }

    for my $kind (qw(error_log no_error_log)) {
        my $pats = $block->$kind;
        next unless defined $pats;
        for my $lvl (keys %warn_levels) {
            delete $warn_levels{$lvl} if value_contains($pats, "[$lvl");
        }
        $lines ||= error_log_data();
        if ($kind eq 'error_log') {
            check_log_present($name, $pats, $lines, 'error.log', $idx,
                              \&Test::Nginx::Util::error_log_more);
        } else {
            check_log_absent($name, $pats, $lines, 'error.log', $idx);
        }
    }

    # like the real module: always read the log, warn about serious messages
    $lines ||= error_log_data();
    for my $line (@$lines) {
        for my $lvl (sort keys %warn_levels) {
            warn "WARNING: $name - " . fmt_str($line) . "\n" if $line =~ /\[$lvl\]/;
        }
        if ($line =~ /\bAssertion .*?failed\b/) {
            no_ending();
            chomp(my $l = $line);
            fail("$name - $l\n");
        }
    }
}

sub check_access_log {
    my ($block, $dry_run, $idx) = @_;
    my $name = $block->name;
    my $lines;
    if (defined(my $pats = $block->access_log)) {
        check_log_present($name, $pats, $lines ||= access_log_data(), 'access.log', $idx);
    }
    if (defined(my $pats = $block->no_access_log)) {
        check_log_absent($name, $pats, $lines ||= access_log_data(), 'access.log', $idx);
    }
}

# ------------------------------------------------------------ block driver

sub run_test_helper {
    my ($block, $dry_run, $repeated_req_idx) = @_;
    my $name = $block->name;
    my $reqs = get_req_from_block($block);
    bail_out("$name - request empty") unless @$reqs;

    my $timeout = parse_time($block->timeout) // timeout();
    my $pipelined = $block->pipelined_requests ? scalar @{ $block->pipelined_requests } : 0;
    my $total = $pipelined || @$reqs;
    my $need_array = $pipelined || @$reqs > 1;
    my ($res, $raw, $head_req);

    for my $req_idx (0 .. $total - 1) {
        if (!$pipelined || $req_idx == 0) {
            ($raw, $head_req) = send_request($reqs->[$req_idx], $block->raw_request_middle_delay,
                                             $timeout, $block);
        }
        $raw //= '';

        if (!defined $block->ignore_response) {
            my ($raw_headers, $left);
            if (defined $block->http09) {
                $res = Test::Nginx::Socket::Response->new(code => 200, content => $raw);
                $raw_headers = '';
            } else {
                ($res, $raw_headers, $left) = parse_response($name, $raw, $head_req);
            }
            if ($pipelined) {
                $raw = $left;   # the next response follows
            } elsif (defined $left && length $left) {
                $left =~ s/([\0-\037\200-\377])/sprintf('\x{%02x}',ord $1)/eg;
                warn "WARNING: $name - unexpected extra bytes after last chunk in ",
                    "response: \"$left\"\n";
            }
            check_error_code($block, $res, $req_idx, $need_array);
            check_response_headers($block, $res, $raw_headers // '', $req_idx, $need_array);
            transform_response_body($block, $res, $req_idx);
            check_response_body($block, $res, $dry_run, $req_idx, $repeated_req_idx, $need_array);
        }

        # between requests the logs are checked too (as the real module does)
        if ($req_idx < $total - 1) {
            sleep $block->wait if $block->wait;
            check_error_log($block, $res, $dry_run, $repeated_req_idx, $need_array);
            check_access_log($block, $dry_run, $repeated_req_idx) unless defined $block->ignore_response;
        }
    }

    sleep $block->wait if $block->wait;
    check_error_log($block, $res, $dry_run, $repeated_req_idx, $need_array);
    check_access_log($block, $dry_run, $repeated_req_idx) unless defined $block->ignore_response;
}

1;
