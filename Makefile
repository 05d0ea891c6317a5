# clustermail top-level build. Non-recursive: every module's sources are
# found by wildcard, each module becomes one static archive, and the
# programs link the archives in dependency order (node -> cluster ->
# storage/proto -> lib).
#
#   make            optimised build into build/ (binaries in build/bin/)
#   make run        install deps, build, first-run setup, start a node
#   make test       install deps, build with ASan+UBSan into build/san/,
#                   run unit tests, fuzz-seed regressions, integration tests
#   make bench      optimised build, run tests/bench/run.sh
#   make fuzz       build libFuzzer harnesses and fuzz each for FUZZ_SECONDS
#   make stress     long concurrency and crash runs of the mail store
#   make audit      testssl.sh against a TLS port
#   make install    PREFIX=/usr/local DESTDIR=
#   make clean

O ?= build
PREFIX ?= /usr/local
DESTDIR ?=
SANITIZE ?= 0
FUZZ_SECONDS ?= 30
PYTHON ?= /usr/bin/python3

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

PKGS := rocksdb libevent libevent_pthreads libevent_openssl libzmq libqb libconfig libcrypt libssl libcrypto libsasl2 ldns
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CC ?= cc
WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral \
        -Wmissing-prototypes -Wstrict-prototypes -Wvla
CPPFLAGS_ALL := -I. -D_GNU_SOURCE -DCM_VERSION='"$(VERSION)"' $(PKG_CFLAGS)
CFLAGS_ALL := -std=c17 $(WARN) -g -fno-omit-frame-pointer -MMD -MP
ifeq ($(SANITIZE),1)
CFLAGS_ALL += -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS_ALL := -fsanitize=address,undefined
else
CFLAGS_ALL += -O2
LDFLAGS_ALL :=
endif
LDLIBS_ALL := $(PKG_LIBS) -lpthread -lm

MODULES := lib storage proto cluster lb web node
PROGRAMS := maild mailctl sendmail
# Other names of sendmail (it looks at argv[0]), as Postfix installs them.
SENDMAIL_NAMES := mailq newaliases

# node/<program>.c holds each program's main(); everything else in node/
# is shared between the programs through the node archive.
MAIN_SRCS := $(addprefix node/,$(addsuffix .c,$(PROGRAMS)))
module_srcs = $(filter-out $(MAIN_SRCS),$(wildcard $(1)/*.c $(1)/*/*.c))
module_objs = $(patsubst %.c,$(O)/obj/%.o,$(call module_srcs,$(1)))
module_ar = $(O)/obj/lib$(1).a

# Link order: dependents first.
LINK_MODULES := node web lb cluster proto storage lib
ARCHIVES := $(foreach m,$(LINK_MODULES),$(if $(call module_srcs,$(m)),$(call module_ar,$(m))))

BINS := $(addprefix $(O)/bin/,$(PROGRAMS))
BIN_LINKS := $(addprefix $(O)/bin/,$(SENDMAIL_NAMES))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(O)/tests/%,$(UNIT_SRCS))
BENCH_SRCS := $(wildcard tests/bench/bench_*.c)
BENCH_BINS := $(patsubst tests/bench/%.c,$(O)/bench/%,$(BENCH_SRCS))

# Keep objects between runs (they are pattern-rule intermediates).
.SECONDARY:

.PHONY: all run test check unit integration fuzz-regress bench fuzz install clean deps
all: $(BINS) $(BIN_LINKS)

$(O)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -c $< -o $@

define archive_rule
$(call module_ar,$(1)): $(call module_objs,$(1))
	@mkdir -p $$(dir $$@)
	@rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(if $(call module_srcs,$(m)),$(eval $(call archive_rule,$(m)))))

$(O)/bin/%: $(O)/obj/node/%.o $(ARCHIVES)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $< $(ARCHIVES) $(LDLIBS_ALL)

$(BIN_LINKS): $(O)/bin/sendmail
	@ln -sf sendmail $@

$(O)/tests/%: $(O)/obj/tests/unit/%.o $(ARCHIVES)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $< $(ARCHIVES) $(LDLIBS_ALL) -lcmocka

$(O)/bench/%: $(O)/obj/tests/bench/%.o $(ARCHIVES)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $< $(ARCHIVES) $(LDLIBS_ALL)

deps:
	@./deploy/deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	@./deploy/run.sh

# `make test` is what CI runs: everything under ASan+UBSan in build/san.
test: deps
	@$(MAKE) --no-print-directory O=build/san SANITIZE=1 check

check: $(BINS) $(BIN_LINKS) $(UNIT_BINS)
	@echo "== unit tests"
	@set -e; for t in $(UNIT_BINS); do echo "-- $$t"; $$t; done
	@$(MAKE) --no-print-directory fuzz-regress
	@echo "== integration tests"
	MAILD=$(abspath $(O)/bin/maild) MAILCTL=$(abspath $(O)/bin/mailctl) \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

# Every harness replays its seed corpus (and kept crashers) once.
fuzz-regress:
	@echo "== fuzz seed regressions"
	@$(MAKE) --no-print-directory -f tests/fuzz/fuzz.mk regress

fuzz: deps
	@$(MAKE) --no-print-directory -f tests/fuzz/fuzz.mk run FUZZ_SECONDS=$(FUZZ_SECONDS)

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BINS)
	@O=$(O) ./tests/bench/run.sh

# TLS audit, not part of `make test`: testssl.sh against a real maild's
# implicit-TLS and STARTTLS ports (tests/audit/tls_audit.sh).
.PHONY: audit
audit: deps
	@$(MAKE) --no-print-directory all
	@O=$(O) ./tests/audit/tls_audit.sh

# The long forms of the store's concurrency and crash tests (make test
# runs their short forms).
.PHONY: stress
stress: deps
	@$(MAKE) --no-print-directory O=build/san SANITIZE=1 build/san/tests/test_store_concurrency build/san/tests/test_store_crash
	@O=build/san ./tests/stress/run.sh

install: $(BINS) $(BIN_LINKS)
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/doc/clustermail
	install -m 0755 $(O)/bin/maild $(DESTDIR)$(PREFIX)/sbin/maild
	install -m 0755 $(O)/bin/mailctl $(DESTDIR)$(PREFIX)/sbin/mailctl
	install -m 0755 $(O)/bin/sendmail $(DESTDIR)$(PREFIX)/sbin/sendmail
	for n in $(SENDMAIL_NAMES); do ln -sf sendmail $(DESTDIR)$(PREFIX)/sbin/$$n; done
	install -m 0644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/clustermail/
	install -d $(DESTDIR)$(PREFIX)/share/clustermail
	install -m 0644 deploy/maild.conf.sample $(DESTDIR)$(PREFIX)/share/clustermail/

clean:
	rm -rf build

-include $(shell find $(O)/obj -name '*.d' 2>/dev/null)
