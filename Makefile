# kvio build. `make` builds build/kvio; `make test` runs every test (see README).
# BUILD and SANITIZE select a variant: `make asan` builds build/asan/kvio with ASan+UBSan.

CC ?= gcc
BUILD ?= build
SANITIZE ?=

CFLAGS_BASE := -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-D_GNU_SOURCE -Isrc -I. -MMD -MP $(shell pkg-config --cflags slirp)
ifeq ($(SANITIZE),1)
CFLAGS_BASE += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -O1
LDFLAGS_SAN := -fsanitize=address,undefined
endif
CFLAGS ?=
LDLIBS := -luring -lseccomp -ljansson -lz -lpthread $(shell pkg-config --libs slirp)

LIB_SRCS := $(shell find src -name '*.c' ! -name main.c | sort)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
# tools/: vhost-user backends built on the library; each tool's core (all
# but its main file, kvio-NAME.c) in one archive the unit tests link too.
TOOLS_LIB_SRCS := $(filter-out tools/kvio-%.c,$(wildcard tools/*.c))
TOOLS_LIB_OBJS := $(TOOLS_LIB_SRCS:%.c=$(BUILD)/obj/%.o)
TOOLS := $(patsubst tools/%.c,$(BUILD)/%,$(wildcard tools/kvio-*.c))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_HELPERS := $(BUILD)/obj/tests/unit/virtio_driver.o $(BUILD)/obj/tests/unit/vhost_user_frontend.o
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

# libFuzzer targets: each tests/fuzz/fuzz_NAME.c with the library sources (and tools/ modules) it needs.
FUZZ_CC ?= clang
FUZZ_FLAGS := -std=gnu11 -g -O1 -Wall -Wextra -Werror -D_GNU_SOURCE -Isrc -I. -fsanitize=fuzzer,address,undefined
FUZZ_LIB_SRCS := src/virtio/queue.c src/virtio/blk.c src/virtio/net.c src/virtio/balloon.c src/backend/block_file.c \
	src/util/guest_mem.c src/util/iov.c src/util/log.c src/hw/e1000.c src/hw/i8042.c src/hw/pci.c src/vhost/vhost_user.c \
	src/vhost/vhost_user_backend.c src/vhost/vhost_user_frontend.c src/util/csum.c tools/offload.c \
	src/monitor/monitor.c src/monitor/qmp.c src/monitor/commands.c src/monitor/hmp.c src/util/event_loop.c \
	src/backend/net_coalesce.c
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SMOKE_SECONDS ?= 20
FUZZ_SECONDS ?= 600

.SECONDARY:
.PHONY: all guest asan unit test test-unit test-guest run clean bench fuzz fuzz-smoke fuzz-build
all: $(BUILD)/kvio $(TOOLS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) -c $< -o $@

$(BUILD)/libkvio.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/kvio: $(BUILD)/obj/src/main.o $(BUILD)/libkvio.a
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/libkvio-tools.a: $(TOOLS_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

# A tool links only what it uses from the library: no KVM or slirp, and
# io_uring only for kvio-blkd (the image's I/O, as in kvio).
TOOL_LDLIBS_kvio-blkd := -luring
$(BUILD)/kvio-%: $(BUILD)/obj/tools/kvio-%.o $(BUILD)/libkvio-tools.a $(BUILD)/libkvio.a
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(TOOL_LDLIBS_kvio-$*)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(UNIT_HELPERS) $(BUILD)/libkvio-tools.a $(BUILD)/libkvio.a
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

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB_SRCS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $^ -luring -ljansson -lz

fuzz-build: $(FUZZ_TARGETS)

fuzz-smoke: fuzz-build
	tests/fuzz/run $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

fuzz: fuzz-build
	tests/fuzz/run $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Everything: unit tests (plain and sanitized), fuzz smoke runs, then the guest
# tests through the testbed runner (directly on hardware KVM, nested on PVM).
test: all guest
	$(MAKE) test-unit
	$(MAKE) BUILD=build/asan SANITIZE=1 build/asan/kvio test-unit
	$(MAKE) fuzz-smoke
	tests/guest/run-all

# Build everything and boot the default guest to an interactive shell.
run: all guest
	tests/testbed/run $(BUILD)/kvio run $(ARGS)

bench: all guest
	bench/boot

clean:
	rm -rf build/obj build/asan build/tests build/fuzz build/kvio build/libkvio.a build/libkvio-tools.a $(TOOLS)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
