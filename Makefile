# ngx_http_retell_module
#
#   make run    install what is missing, build, start PostgreSQL and nginx
#               on loopback with the sample configuration
#   make test   install what is missing, build, run every test
#   make test-asan  every test against nginx and the module built with
#               AddressSanitizer and UBSan; fails on any sanitizer report
#   make bench  the benchmarks under bench/
#   make fuzz   the libFuzzer harnesses of t/fuzz/, FUZZ_TIME seconds each
#               (default 60); make fuzz-smoke: the corpus replay and
#               FUZZ_SMOKE_TIME seconds each (default 10)
#   make deb    the Debian package libnginx-mod-http-retell into build/deb/
#               (tools/build-deb; docs/operations.md, "The Debian package")

MODULE      = build/nginx/objs/ngx_http_retell_module.so
SOURCES     = config $(wildcard ngx_http_retell_module/*.[ch])
PURE        = ngx_http_retell_module

UNIT_CFLAGS = -std=gnu99 -O2 -g -Wall -Wextra -Werror -I $(PURE)
UNIT_TESTS  = build/unit/test_signature build/unit/test_event \
              build/unit/test_policy build/unit/test_phone \
              build/unit/test_mail build/unit/test_call_inbound

# libFuzzer with ASan and UBSan: Debian's clang (libclang-rt-14-dev holds
# libFuzzer for clang 14, Debian 12's)
FUZZ_CC     = clang
FUZZ_CFLAGS = -g -O1 -fsanitize=fuzzer,address,undefined \
              -fno-sanitize-recover=undefined -Wall -Wextra -Werror -I $(PURE)
FUZZERS     = event signature phone mail call_inbound
FUZZ_BINS   = $(FUZZERS:%=build/fuzz/fuzz_%)
FUZZ_TIME       ?= 60
FUZZ_SMOKE_TIME ?= 10

.PHONY: all deps module unit test test-asan run stop bench clean \
        fuzz fuzz-smoke fuzz-build fuzz-deps deb deb-deps

all: module

deps:
	@tools/install-deps

module: $(MODULE)

$(MODULE): $(SOURCES)
	tools/build-module

build/unit/test_signature: t/unit/test_signature.c \
                           $(PURE)/ngx_http_retell_signature.c
	@mkdir -p build/unit
	$(CC) $(UNIT_CFLAGS) -o $@ $^ -lcrypto

build/unit/test_event: t/unit/test_event.c $(PURE)/ngx_http_retell_event.c \
                       $(PURE)/ngx_http_retell_event_capture.c \
                       $(PURE)/ngx_http_retell_event_name.c \
                       $(PURE)/ngx_http_retell_json.c
	@mkdir -p build/unit
	$(CC) $(UNIT_CFLAGS) -o $@ $^ -lyajl

build/unit/test_call_inbound: t/unit/test_call_inbound.c \
                              $(PURE)/ngx_http_retell_call_inbound.c \
                              $(PURE)/ngx_http_retell_json.c
	@mkdir -p build/unit
	$(CC) $(UNIT_CFLAGS) -o $@ $^ -lyajl

build/unit/test_mail: t/unit/test_mail.c $(PURE)/ngx_http_retell_mail.c \
                      $(PURE)/ngx_http_retell_mail_encode.c t/unit/base64.h
	@mkdir -p build/unit
	$(CC) $(UNIT_CFLAGS) -o $@ $(filter %.c,$^) -lyajl

build/unit/test_%: t/unit/test_%.c $(PURE)/ngx_http_retell_%.c
	@mkdir -p build/unit
	$(CC) $(UNIT_CFLAGS) -o $@ $^

build/fuzz/fuzz_event: t/fuzz/fuzz_event.c t/fuzz/fuzz.h \
                      $(PURE)/ngx_http_retell_event.c \
                      $(PURE)/ngx_http_retell_event_capture.c \
                      $(PURE)/ngx_http_retell_event_name.c \
                      $(PURE)/ngx_http_retell_event.h \
                      $(PURE)/ngx_http_retell_event_parser.h \
                      $(PURE)/ngx_http_retell_json.c \
                      $(PURE)/ngx_http_retell_json.h
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) -lyajl

build/fuzz/fuzz_signature: t/fuzz/fuzz_signature.c t/fuzz/fuzz.h \
                          $(PURE)/ngx_http_retell_signature.c \
                          $(PURE)/ngx_http_retell_signature.h
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) -lcrypto

build/fuzz/fuzz_phone: t/fuzz/fuzz_phone.c t/fuzz/fuzz.h \
                      $(PURE)/ngx_http_retell_phone.c \
                      $(PURE)/ngx_http_retell_phone.h
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^)

build/fuzz/fuzz_call_inbound: t/fuzz/fuzz_call_inbound.c t/fuzz/fuzz.h \
                      $(PURE)/ngx_http_retell_call_inbound.c \
                      $(PURE)/ngx_http_retell_json.c \
                      $(PURE)/ngx_http_retell_call_inbound.h
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) -lyajl

build/fuzz/fuzz_mail: t/fuzz/fuzz_mail.c t/fuzz/fuzz.h t/unit/base64.h \
                     $(PURE)/ngx_http_retell_mail.c \
                     $(PURE)/ngx_http_retell_mail_encode.c \
                     $(PURE)/ngx_http_retell_mail_buf.h \
                     $(PURE)/ngx_http_retell_mail.h \
                     $(PURE)/ngx_http_retell_event.h
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) -lyajl

# under valgrind when it is there: the pure code must not leak or misread
VALGRIND   := $(shell command -v valgrind >/dev/null 2>&1 \
                && echo valgrind -q --leak-check=full --error-exitcode=3)

unit: $(UNIT_TESTS)
	@rc=0; for t in $(UNIT_TESTS); do \
	    echo "$$t"; $(VALGRIND) $$t t/samples || rc=1; \
	done; exit $$rc

test: deps
	$(MAKE) module unit
	$(MAKE) fuzz-smoke
	t/run

# nginx (the system's version, Debian's source) and the module with ASan
# and UBSan under build/asan (tools/build-asan), then the whole suite
# against them (tools/test-asan)
test-asan: deps
	tools/build-asan
	tools/test-asan

fuzz-deps:
	@tools/install-deps clang libclang-rt-14-dev

fuzz-build: fuzz-deps
	@$(MAKE) --no-print-directory $(FUZZ_BINS)

# one harness at a time; new inputs into build/fuzz/corpus/, see t/fuzz/run
fuzz: fuzz-build
	t/fuzz/run $(FUZZ_TIME) $(FUZZERS)

# a crash or a broken invariant on the corpus (the defects' reproducers
# among it) or within the few seconds after fails
fuzz-smoke: fuzz-build
	t/fuzz/run --smoke $(FUZZ_SMOKE_TIME) $(FUZZERS)

# what the package is made of; the .deb is rebuilt when one changes
DEB_INPUTS  = $(SOURCES) $(wildcard debian/* debian/*/* sql/*.sql tools/* \
                                    conf/* docs/*.md) README.md

# dpkg-buildpackage (it requires build-essential) and debhelper; lintian
# for t/090-deb.t; nginx-dev (dh-sequence-nginx) and the libraries are in
# install-deps' own list
deb-deps:
	@tools/install-deps build-essential dpkg-dev debhelper lintian

deb: deb-deps
	@$(MAKE) --no-print-directory build/deb/stamp

build/deb/stamp: $(DEB_INPUTS)
	tools/build-deb
	@touch $@

run: deps
	$(MAKE) module
	tools/run

stop:
	tools/run stop

bench: deps
	$(MAKE) module
	bench/run

clean:
	rm -rf build t/servroot*
