# kvio build. `make` builds build/kvio; `make test` runs every test (see README).
# BUILD and SANITIZE select a variant: `make asan` builds build/asan/kvio with ASan+UBSan.

CC ?= gcc
BUILD ?= build
SANITIZE ?=

CFLAGS_BASE := -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-D_GNU_SOURCE -Isrc -MMD -MP
ifeq ($(SANITIZE),1)
CFLAGS_BASE += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -O1
LDFLAGS_SAN := -fsanitize=address,undefined
endif
CFLAGS ?=
LDLIBS := -lpthread

LIB_SRCS := $(shell find src -name '*.c' ! -name main.c | sort)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.SECONDARY:
.PHONY: all guest asan unit test test-unit test-guest run clean bench
all: $(BUILD)/kvio

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) -c $< -o $@

$(BUILD)/libkvio.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/kvio: $(BUILD)/obj/src/main.o $(BUILD)/libkvio.a
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/libkvio.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ -lcmocka $(LDLIBS)

# The default guest: Debian's kernel and busybox, cached after the first build.
guest:
	guest/build.sh build/guest

asan:
	$(MAKE) BUILD=build/asan SANITIZE=1 build/asan/kvio

unit: $(UNIT_BINS)

test-unit: unit
	tests/unit/run $(UNIT_BINS)

# Everything: unit tests (plain and sanitized), then the guest tests through
# the testbed runner (directly on hardware KVM, nested where the host has PVM).
test: all guest
	$(MAKE) test-unit
	$(MAKE) BUILD=build/asan SANITIZE=1 build/asan/kvio test-unit
	tests/guest/run-all

# Build everything and boot the default guest to an interactive shell.
run: all guest
	tests/testbed/run $(BUILD)/kvio run $(ARGS)

bench: all guest
	bench/boot

clean:
	rm -rf build/obj build/asan build/tests build/kvio build/libkvio.a

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
