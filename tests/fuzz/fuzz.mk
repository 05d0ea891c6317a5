# libFuzzer harnesses: tests/fuzz/fuzz_<name>.c, seeds in
# tests/fuzz/corpus/<name>/ (kept crashers go there too).
#   make -f tests/fuzz/fuzz.mk regress   replay every seed once
#   make -f tests/fuzz/fuzz.mk run       fuzz each harness FUZZ_SECONDS
F := build/fuzz
FUZZ_SECONDS ?= 30
CLANG ?= clang
PKGS := rocksdb libevent libevent_openssl libzmq libqb libconfig libcrypt libssl libcrypto libsasl2 ldns
FCFLAGS := -std=c17 -g -O1 -MMD -MP -I. -D_GNU_SOURCE -DCM_VERSION='"fuzz"' \
           $(shell pkg-config --cflags $(PKGS)) \
           -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
# Only the pure modules are fuzzed: parsers and decoders live there.
FUZZ_MODULES := lib storage proto
SRCS := $(foreach m,$(FUZZ_MODULES),$(wildcard $(m)/*.c $(m)/*/*.c))
OBJS := $(patsubst %.c,$(F)/obj/%.o,$(SRCS))
HARNESSES := $(patsubst tests/fuzz/%.c,$(F)/%,$(wildcard tests/fuzz/fuzz_*.c))

.SECONDARY:
.PHONY: build regress run
build: $(HARNESSES)

$(F)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CLANG   $<"
	@$(CLANG) $(FCFLAGS) -c $< -o $@

$(F)/fuzz_%: tests/fuzz/fuzz_%.c $(OBJS)
	@echo "  FUZZER  $@"
	@$(CLANG) $(FCFLAGS) -fsanitize=fuzzer $< $(OBJS) $(shell pkg-config --libs $(PKGS)) -lpthread -lstdc++ -o $@

regress: build
	@set -e; for h in $(HARNESSES); do n=$${h##*/fuzz_}; \
	  c=tests/fuzz/corpus/$$n; \
	  if [ -d $$c ] && [ -n "$$(ls -A $$c)" ]; then \
	    echo "-- $$h ($$(ls $$c | wc -l) seeds)"; $$h $$c/* >/dev/null 2>$(F)/$$n.log || { cat $(F)/$$n.log; exit 1; }; \
	  else echo "-- $$h: no seeds"; exit 1; fi; done

run: build
	@set -e; for h in $(HARNESSES); do n=$${h##*/fuzz_}; mkdir -p $(F)/corpus/$$n; \
	  echo "-- fuzzing $$n for $(FUZZ_SECONDS)s"; \
	  $$h -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(F)/$$n- $(F)/corpus/$$n tests/fuzz/corpus/$$n; done

# the harnesses' own dependency files are beside them, the modules' under obj/
-include $(shell find $(F) -name '*.d' 2>/dev/null)
