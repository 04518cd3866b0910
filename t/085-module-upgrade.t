# Upgrading the module file under a running nginx (docs/operations.md,
# "Upgrading"): dpkg and "make install" replace the .so, and a reload
# keeps running the code loaded first (dlopen() of a loaded name returns
# it), so the reload says so in the error log; a new master (a restart,
# or USR2 and QUIT to the old one) runs the new file.
#
# A plain Test::More program: it runs its own nginx on a copy of the
# module, replaces the copy with a build whose version string differs,
# and reads the version back from retell_build_info.
use strict;
use warnings;
use lib 't/inc';
use Test::More;
use File::Temp qw(tempdir);
use File::Copy qw(copy);
use Retell;
use Faults ();

my $port = ($ENV{TEST_NGINX_PORT} // 1984) + 19;
my $built = $ENV{TEST_NGINX_LOAD_MODULES}
            // "$REPO/build/nginx/objs/ngx_http_retell_module.so";
my $dir = tempdir(CLEANUP => 1);
my $so = "$dir/ngx_http_retell_module.so";

sub slurp { open my $fh, '<:raw', $_[0] or die "$_[0]: $!"; local $/; return <$fh> }

# the module's version as the metrics say it (what runs)
sub running_version {
    my ($m) = scrape();
    return $m =~ /^retell_build_info\{version="([^"]*)"/m ? $1 : undef;
}

sub scrape {
    require IO::Socket::INET;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                     Timeout => 5) or return '';
    print $sock "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
    local $/;
    return <$sock> // '';
}

copy($built, $so) or die "copy: $!";

local $ENV{TEST_NGINX_LOAD_MODULES} = $so;
# the sanitizers' settings (tools/test-asan) reach the new master of a
# USR2 only through "env": nginx gives a new binary only what it names
my $ng = Retell::nginx_start(port => $port + 1, workers => 1,
                             main => "env ASAN_OPTIONS;\nenv UBSAN_OPTIONS;\n",
                             http => <<"_EOC_");
retell_postgres "$Retell::PG";
server {
    listen 127.0.0.1:$port;
    location = /metrics { retell_metrics; }
}
_EOC_

my $owner = $$;
END { local $?; Retell::nginx_stop($ng) if $$ == $owner && $ng }

my $version;
ok(wait_for(sub { defined($version = running_version()) }, 10), 'the module runs')
    or BAIL_OUT('no metrics');

# a build that says another version: the same code, its version string
# replaced in place (same length), so the file differs and says so
my $new = slurp($so);
my $other = '9' x length $version;
my $n = $new =~ s/\x00\Q$version\E\x00/\x00$other\x00/g;
is($n, 1, "the version string \"$version\" found once in the file");

my $master = Faults::first_line_pid("$ng->{dir}/logs/nginx.pid");
# the way dpkg installs a file: a new one renamed over the old
open my $fh, '>:raw', "$so.new" or die $!;
print $fh $new;
close $fh;
rename "$so.new", $so or die "rename: $!";

Retell::nginx_signal($ng, 'reload');
ok(wait_for(sub { Faults::slurp($ng->{error_log}) =~ /gracefully shutting down/ }, 10),
   'reloaded: the old worker leaves');
ok(wait_for(sub { my @workers = Faults::children_of($master); @workers == 1 }, 10),
   'one worker again');
is(running_version(), $version, 'after a reload the code loaded first still runs');
like(Faults::slurp($ng->{error_log}),
     qr/\[warn\] .*"\Q$so\E", which holds ngx_http_retell_module, was replaced after nginx loaded it: a reload keeps running the code loaded first; restart nginx, or upgrade it on the fly \(USR2, then QUIT to the old master\), to run the new file/,
     'and the reload says so');

# the upgrade on the fly: a new master execs nginx and loads the file
kill 'USR2', $master;
ok(wait_for(sub { -s "$ng->{dir}/logs/nginx.pid.oldbin" }, 10), 'USR2: a new master');
my $new_master = Faults::first_line_pid("$ng->{dir}/logs/nginx.pid");
isnt($new_master, $master, 'with its own pid');
kill 'QUIT', $master;
ok(wait_for(sub { !Retell::running($master) }, 15), 'the old master quits');
ok(wait_for(sub { (running_version() // '') eq $other }, 10), 'the new master runs the new file')
    or diag(running_version() // 'none', "\n", Faults::slurp($ng->{error_log}));
my $warned = () = Faults::slurp($ng->{error_log}) =~ /which holds ngx_http_retell_module, was replaced/g;
is($warned, 1, 'the new master loaded it first: no second warning');

Retell::nginx_stop($ng);
undef $ng;

done_testing();
