package Test::Nginx::Socket;

# Small stand-in for the CPAN Test::Nginx::Socket (openresty/test-nginx):
# the subset of sections our t/*.t use, on Test::Base and core Perl only.
# Test names and messages follow the real module, so plans and `prove`
# output match.  nginx management lives in Test::Nginx::Util.

use strict;
use warnings;
use Test::Base -base;    # like the real one, a Test::Base subclass
use Test::Nginx::Util;
use IO::Socket::INET;
use IO::Select;
use POSIX qw(EAGAIN EINTR);
use List::Util qw(min);
use Time::HiRes qw(sleep time);

our $VERSION = '0.29';

our @EXPORT = qw( env_to_nginx is_str plan run_tests run_test
  repeat_each config_preamble worker_connections master_process_enabled
  no_long_string workers master_on master_off log_level no_shuffle
  no_root_location server_name server_addr server_root html_dir server_port
  server_port_for_client timeout check_accum_error_log
  add_block_preprocessor bail_out add_cleanup_handler add_response_body_check
);

# How long --- error_log keeps re-reading error.log for lines nginx writes
# shortly after the response (the real module only sleeps 45ms once).
our $ErrLogPollTime = 1;

our @ResponseBodyChecks;
sub add_response_body_check ($) { push @ResponseBodyChecks, shift }

$Test::Nginx::Util::RunTestHelper = \&run_test_helper;

sub no_ending { Test::More->builder->no_ending(1) }    # extra fails: no plan complaint

sub fmt_str {
    my $str = shift;
    chomp $str;
    $str =~ s/"/\\"/g; $str =~ s/\r/\\r/g; $str =~ s/\n/\\n/g;
    $str;
}

# ------------------------------------------------------------------ requests

# --- more_headers text -> (CRLF header lines, whether the body is chunked)
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

# "METHOD [/uri [HTTP/x.y]]\nbody" -> the HTTP request, adding Host,
# Connection and (for a non-empty, non-chunked body) Content-Length; the body
# is then trimmed, as in the real module.
sub build_request {
    my ($name, $more_headers, $is_chunked, $req) = @_;
    my ($first, $content) = ($req // '') =~ /\A([^\n]*\n?)(.*)\z/s;
    bail_out("$name - Request line should be non-empty") if $first eq '';
    $first =~ /^\s*(\S+) *(?:(\S+) *)?(?:(\S+) *)?\s*$/
        or bail_out("$name - Request line is not valid. Should be 'meth [url [version]]' but got \"$first\".");
    my ($meth, $url, $ver) = ($1, $2 // '/', $3 // 'HTTP/1.1');
    my $headers = '';
    $headers .= "Host: $ServerName\r\n" if $more_headers !~ /(?:^|\n)Host:/msi;
    $headers .= "Connection: close\r\n" if $more_headers !~ /(?:^|\n)Connection/msi;
    $headers .= $more_headers;
    if (!$is_chunked && $content ne '' && $more_headers !~ /(?:^|\n)Content-Length:/) {
        $content =~ s/^\s+|\s+$//gs;
        $headers .= "Content-Length: " . length($content) . "\r\n";
    }
    return "$meth $url $ver\r\n$headers\r\n$content";
}

# The raw request strings to send, one per request of the block.
sub get_req_from_block {
    my $block = shift;
    my $name = $block->name;
    if (defined(my $raw = $block->raw_request)) {    # sent as is
        return [ ref $raw eq 'ARRAY' ? join('', @$raw) : $raw ];
    }
    my $request = $block->request;
    if (defined $request && !ref $request) {
        1 while $request =~ s/^\s*\#[^\n]+\s+|^\s+//gs;    # leading comments
    }
    bail_out("$name - invalid ---request : MUST be string or array of requests")
        if ref $request && ref $request ne 'ARRAY';
    my @reqs = ref $request ? @$request : ($request);
    my $more = $block->more_headers // '';
    my @out;
    for my $i (0 .. $#reqs) {
        my $hdr = ref $more eq 'ARRAY' ? $more->[$i] : $more;    # arrays: one per request
        bail_out("--- more_headers lacks data for the ${i}th request") unless defined $hdr;
        push @out, build_request($name, parse_more_headers($hdr), $reqs[$i]);
    }
    return \@out;
}

# Send one request and read until the server closes the connection.
# $timeout bounds the wait between two I/O events, as in the real module.
sub send_request ($$$) {
    my ($req, $timeout, $block) = @_;
    my $name = $block->name;
    my $head_req = $req =~ /^\s*HEAD\s+/ ? 1 : 0;
    my $sock = IO::Socket::INET->new(PeerAddr => $ServerAddr, PeerPort => $ServerPortForClient,
                                     Proto => 'tcp', Timeout => $timeout);
    if (!$sock) {    # nginx was seen listening before we got here
        no_ending();
        fail("$name - Can't connect to $ServerAddr:$ServerPortForClient: $! (aborted)\n");
        return;
    }
    $sock->blocking(0);
    local $SIG{PIPE} = 'IGNORE';
    my ($resp, $off, $sel) = ('', 0, IO::Select->new($sock));
    while (1) {
        $! = 0;
        my ($readable, $writable) =
            IO::Select->select($sel, $off < length $req ? $sel : undef, undef, $timeout);
        if (!$readable && !$writable) {
            next if $! == EINTR;
            if (!defined $block->abort) {
                no_ending();
                fail("ERROR: client socket timed out - $name\n");
            }
            last;
        }
        if ($writable && @$writable) {
            my $n = syswrite($sock, $req, length($req) - $off, $off);
            if (!defined $n && $! != EAGAIN) {
                warn "write failed: $!\n";
                $resp = "write failed: $!" if $resp eq '';
                last;
            }
            $off += $n // 0;
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

# ----------------------------------------------------------------- responses

{   # just enough of HTTP::Response for the checks below
    package Test::Nginx::Socket::Response;
    sub new     { my ($class, %a) = @_; bless { %a }, $class }
    sub code    { $_[0]{code} }
    sub content { my $s = shift; $s->{content} = shift if @_; $s->{content} }
    sub header {    # case-insensitive; repeated headers joined by ", "
        my ($s, $key) = @_;
        ($key = lc $key) =~ tr/_/-/;
        my @v = map { $_->[1] } grep { $_->[0] eq $key } @{ $s->{headers} };
        return @v ? join(', ', @v) : undef;
    }
}

# Returns ($res, $raw_headers); the body is delimited by chunked encoding or
# Content-Length, else it is everything up to the connection close.
sub parse_response {
    my ($name, $raw, $head_req) = @_;
    my $raw_headers = $raw =~ /(.*?\r\n)\r\n/s ? $1 : '';
    my ($head, $body) = split /\r?\n\r?\n/, $raw, 2;
    my ($status, @lines) = split /\r?\n/, $head // '';
    my @hdr = map { /^([^\s:]+)[ \t]*: ?(.*)/ ? [lc($1) =~ tr/_/-/r, $2] : () } @lines;
    $raw = $body // '';
    $status //= '';
    my $code = $status =~ /^\d{3} / ? (split ' ', $status)[0] : (split ' ', $status)[1];
    $code = undef if defined $code && $code !~ /^\d+$/;
    my $res = Test::Nginx::Socket::Response->new(code => $code, headers => \@hdr, content => $raw);
    return ($res, $raw_headers) if $code && ($code == 304 || $code == 101);

    my ($enc, $len) = ($res->header('Transfer-Encoding'), $res->header('Content-Length'));
    if (defined $enc && $enc eq 'chunked') {
        my $decoded = '';
        my $bad = sub { no_ending(); fail("$name - $_[0]"); return };
        while ($raw !~ /\G0[ \t]*\r\n\r\n/gc) {
            if ($raw =~ /\G[ \t]*([A-Fa-f0-9]+)[ \t]*\r\n/gc) {
                my ($size, $p) = (hex $1, pos $raw);
                return $bad->("invalid chunked data received (not enought octets for the data section)")
                    if length($raw) - $p < $size;
                $decoded .= substr $raw, $p, $size;
                pos($raw) = $p + $size;
                return $bad->("invalid chunked data received (expected CRLF).") if $raw !~ /\G\r\n/gc;
            } elsif ($raw =~ /\G.+/gcs) {
                return $bad->("invalid chunked body received: $&");
            } else {
                return $bad->("no last chunk found - $raw");
            }
        }
        warn_extra_bytes($name, $1) if $raw =~ /\G(.+)/gcs;
        $res->content($decoded);
    } elsif (defined $len && $len =~ /^\d+$/) {
        if (length $raw < $len) {
            warn "WARNING: $name - response body truncated: $len expected, but got ",
                length $raw, "\n" unless $head_req;
        } elsif (length $raw > $len) {
            warn_extra_bytes($name, substr $raw, $len);
            $res->content(substr $raw, 0, $len);
        }
    }
    return ($res, $raw_headers);
}

sub warn_extra_bytes {
    my ($name, $left) = @_;
    $left =~ s/([\0-\037\200-\377])/sprintf('\x{%02x}',ord $1)/eg;
    warn "WARNING: $name - unexpected extra bytes after last chunk in response: \"$left\"\n";
}

# -------------------------------------------------------------------- checks

# Arrayref-valued expectations hold one entry per request of the block.
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
            is(($res ? $res->header($key) : undef) // '', $val, "$name - header $key ok");
        }
    } elsif (defined $block->response_headers_like) {    # only one of the two, as upstream
        my $headers = parse_headers(get_indexed_value($name, $block->response_headers_like, $req_idx, $need_array));
        for my $key (sort keys %$headers) {
            my $val = $headers->{$key} // '';
            like(($res ? $res->header($key) : undef) // '', qr/^$val$/, "$name - header $key like ok");
        }
    }
}

sub check_response_body {
    my ($block, $res, $dry_run, $req_idx, $repeated_req_idx, $need_array) = @_;
    my $name = $block->name;
    my $content = $res ? $res->content : undef;
    if (defined $block->response_body) {
        my $expected = get_indexed_value($name, $block->response_body, $req_idx, $need_array);
        if (ref $expected) {
            like($content, $expected, "$name - response_body - like (repeated req $repeated_req_idx, req $req_idx)");
        } else {
            if (defined $expected) {
                $expected =~ s/\$ServerPort\b/$ServerPort/g;
                $expected =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
            }
            is($content, $expected,
               "$name - response_body - response is expected (repeated req $repeated_req_idx, req $req_idx)");
        }
    } elsif (defined $block->response_body_like || defined $block->response_body_unlike) {
        my $type = defined $block->response_body_like ? 'like' : 'unlike';
        my $section = "response_body_$type";
        my $pat = get_indexed_value($name, $block->$section, $req_idx, $need_array);
        $pat =~ s/\$ServerPort\b/$ServerPort/g;
        $pat =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        my $test = $type eq 'like' ? \&Test::More::like : \&Test::More::unlike;
        $test->($content, qr/$pat/s,
                "$name - response_body_$type - response is expected (" . (trim($content) // '') . ")");
    }
    $_->($block, $content, $req_idx, $repeated_req_idx, $dry_run) for @ResponseBodyChecks;
}

# ---------------------------------------------------------------- error log

# section value -> patterns: the lines of a string, a qr//, or an array of both
sub norm_pats {
    my $pats = shift;
    if (!ref $pats) { chomp $pats; return split /\n+/, $pats }
    return ref $pats eq 'Regexp' ? ($pats) : @$pats;
}

sub line_matches {
    my ($line, $pat) = @_;
    return ref $pat ? $line =~ /$pat/ : $line =~ /\Q$pat\E/;
}

# --- error_log: each pattern must match a line.  Lines written a little
# later are polled for (bounded) before failing; they also count for
# --- no_error_log, which sees the same $lines.
sub check_error_log_present {
    my ($name, $pats, $lines, $idx) = @_;
    my @pats = norm_pats($pats);
    my $scan = sub {
        for my $line (@{ $_[0] }) {
            for my $pat (@pats) {
                next unless defined $pat && line_matches($line, $pat);
                pass("$name - pattern \"$pat\" matches a line in error.log (req $idx)");
                undef $pat;
            }
        }
    };
    $scan->($lines);
    my $deadline = time + $ErrLogPollTime;
    while (grep(defined, @pats) && time < $deadline) {
        sleep 0.05;
        my $new = Test::Nginx::Util::error_log_more();
        push @$lines, @$new;
        $scan->($new);
    }
    fail("$name - pattern \"$_\" should match a line in error.log (req $idx)") for grep defined, @pats;
}

sub check_error_log_absent {
    my ($name, $pats, $lines, $idx) = @_;
    my @pats = norm_pats($pats);
    my %found;
    for my $i (0 .. $#$lines) {
        for my $pat (@pats) {
            next unless line_matches($lines->[$i], $pat);
            no_ending() if $found{$pat}++;
            my @more = @$lines[$i + 1 .. min($i + 9, $#$lines - 1)];    # context
            fail("$name - pattern \"" . fmt_str($pat) . "\" should not match any line in error.log"
                 . " but matches line \"" . fmt_str($lines->[$i]) . "\" (req $idx)\n" . join '', @more);
        }
    }
    for my $pat (grep { !$found{$_} } @pats) {
        pass("$name - pattern \"" . fmt_str($pat) . "\" does not match a line in error.log (req $idx)");
    }
}

# Called after each request of the block; sees the error.log lines written
# since the previous call (see Test::Nginx::Util::error_log_data).
sub check_error_log {
    my ($block, $res, $dry_run, $idx, $need_array) = @_;
    my $name = $block->name;
    my $lines = error_log_data();    # always read (and consumed), like the real one
    check_error_log_present($name, $block->error_log, $lines, $idx) if defined $block->error_log;
    check_error_log_absent($name, $block->no_error_log, $lines, $idx) if defined $block->no_error_log;
}

# -------------------------------------------------------------- the driver

sub run_test_helper {
    my ($block, $dry_run, $repeated_req_idx) = @_;
    my $name = $block->name;
    my $reqs = get_req_from_block($block);
    my $timeout = parse_time($block->timeout) // timeout();
    my $need_array = @$reqs > 1;
    my $res;
    for my $req_idx (0 .. $#$reqs) {
        my ($raw, $head_req) = send_request($reqs->[$req_idx], $timeout, $block);
        if (!defined $block->ignore_response) {
            ($res, my $raw_headers) = parse_response($name, $raw // '', $head_req);
            check_error_code($block, $res, $req_idx, $need_array);
            check_response_headers($block, $res, $raw_headers // '', $req_idx, $need_array);
            check_response_body($block, $res, $dry_run, $req_idx, $repeated_req_idx, $need_array);
        }
        if ($req_idx < $#$reqs) {    # logs are checked after every request
            sleep $block->wait if $block->wait;
            check_error_log($block, $res, $dry_run, $repeated_req_idx, $need_array);
        }
    }
    sleep $block->wait if $block->wait;
    check_error_log($block, $res, $dry_run, $repeated_req_idx, $need_array);
}

1;
