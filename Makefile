# ngx_http_retell_module
#
#   make run    install what is missing, build, start PostgreSQL and nginx
#               on loopback with the sample configuration
#   make test   install what is missing, build, run every test
#   make test-asan  every test against nginx and the module built with
#               AddressSanitizer and UBSan; fails on any sanitizer report
#   make bench  the benchmarks under bench/

MODULE      = build/nginx/objs/ngx_http_retell_module.so
SOURCES     = config $(wildcard ngx_http_retell_module/*.[ch])
PURE        = ngx_http_retell_module

UNIT_CFLAGS = -std=gnu99 -O2 -g -Wall -Wextra -Werror -I $(PURE)
UNIT_TESTS  = build/unit/test_signature build/unit/test_event \
              build/unit/test_policy build/unit/test_phone \
              build/unit/test_mail

.PHONY: all deps module unit test test-asan run stop bench clean

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
                       $(PURE)/ngx_http_retell_json.c
	@mkdir -p build/unit
	$(CC) $(UNIT_CFLAGS) -o $@ $^ -lyajl

build/unit/test_mail: t/unit/test_mail.c $(PURE)/ngx_http_retell_mail.c
	@mkdir -p build/unit
	$(CC) $(UNIT_CFLAGS) -o $@ $^ -lyajl

build/unit/test_%: t/unit/test_%.c $(PURE)/ngx_http_retell_%.c
	@mkdir -p build/unit
	$(CC) $(UNIT_CFLAGS) -o $@ $^

# under valgrind when it is there: the pure code must not leak or misread
VALGRIND   := $(shell command -v valgrind >/dev/null 2>&1 \
                && echo valgrind -q --leak-check=full --error-exitcode=3)

unit: $(UNIT_TESTS)
	@rc=0; for t in $(UNIT_TESTS); do \
	    echo "$$t"; $(VALGRIND) $$t t/samples || rc=1; \
	done; exit $$rc

test: deps
	$(MAKE) module unit
	t/run

# nginx (the system's version, Debian's source) and the module with ASan
# and UBSan under build/asan (tools/build-asan), then the whole suite
# against them (tools/test-asan)
test-asan: deps
	tools/build-asan
	tools/test-asan

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
