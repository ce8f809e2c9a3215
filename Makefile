# vggtl - one plain Makefile. Objects under build/.
#   make            vggtl and the shim
#   make test       every test (C unit, CLI, interop with Debian's python3-torch)
#   make test SAN=1 the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make test-large opt-in: files over 4 GiB (zip64), the large torchvision models
#   make demo       the seed workflow end to end
#   make bench      speed and memory against Python, as ratios
#   make deps       install the Debian packages (root)

CC      ?= cc
SAN     ?=
PYTHON  ?= /usr/bin/python3
CSTD     = -std=c11 -D_GNU_SOURCE
WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla
CFLAGS  ?= -O2 -g
CPPFLAGS += -Iinclude
LDLIBS  += -lpng -ljpeg -larchive -lz -lcjson -lm -ldl -lpthread
# The shim is the only C++; it links Debian's libtorch-dev, or the libtorch in LIBTORCH
# (a folder with include/ and lib/, e.g. a pip torch's site-packages/torch for CUDA).
CXX     ?= g++
LIBTORCH ?=
SHIM_STD       = c++17
ifeq ($(LIBTORCH),)
TORCH_CPPFLAGS = -I/usr/include/torch/csrc/api/include
TORCH_LIBS     = -ltorch -ltorch_cpu -lc10
else
# what libtorch's TorchConfig.cmake tells CMake users: the libstdc++ ABI it was built with
# (pip wheels before torch 2.7 use the old one; the shim must match to link) and the C++
# standard its headers need (20 from torch 2.13 on)
TORCH_CONFIG   = $(LIBTORCH)/share/cmake/Torch/TorchConfig.cmake
TORCH_ABI      = $(shell sed -n 's/.*set(TORCH_CXX_FLAGS "\(-D_GLIBCXX_USE_CXX11_ABI=[01]\)").*/\1/p;T;q' \
                   $(TORCH_CONFIG) 2>/dev/null)
TORCH_STD      = $(shell sed -n 's/^[[:space:]]*CXX_STANDARD[[:space:]]*\([0-9][0-9]*\).*/\1/p;T;q' $(TORCH_CONFIG) 2>/dev/null)
SHIM_STD       = $(if $(filter 20 23 26,$(TORCH_STD)),c++$(TORCH_STD),c++17)
TORCH_CPPFLAGS = $(TORCH_ABI) -I$(LIBTORCH)/include -I$(LIBTORCH)/include/torch/csrc/api/include
TORCH_LIBS     = -L$(LIBTORCH)/lib -Wl,-rpath,$(LIBTORCH)/lib -Wl,--no-as-needed \
                 $(if $(wildcard $(LIBTORCH)/lib/libtorch_cuda.so),-ltorch_cuda) -ltorch -ltorch_cpu -lc10 -Wl,--as-needed
endif
SHIM_CXXFLAGS ?= -O2 -g

ifeq ($(SAN),1)
CC      = clang
BUILD   = build/san
CFLAGS  = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
# libstdc++ loaded at start-up, so that ASan's __cxa_throw interceptor finds the real one
# when the dlopen'ed shim throws (and catches) a C++ exception
LDFLAGS += -fsanitize=address,undefined -Wl,--no-as-needed -lstdc++ -Wl,--as-needed
else
BUILD   = build
endif

LIB_SRC = src/version.c src/err.c src/io.c src/zip.c src/pickle.c src/pickle_emit.c src/pth.c src/pth_write.c src/pth_tree.c src/storage.c src/cast.c src/safetensors.c \
          src/sbuf.c src/model.c src/model_repr.c src/module.c src/module_repr.c src/model_write.c src/scan.c src/data.c src/data_png.c src/data_jpeg.c \
          src/data_archive.c src/image.c src/resize.c src/plot.c \
          src/shim_load.c src/net.c src/train.c src/fit.c src/dist.c src/ckpt.c
CMD_SRC = src/main.c src/opts.c src/source.c src/cmd_load.c src/cmd_extend.c src/cmd_save_full.c \
          src/cmd_save_weights.c src/cmd_verify.c src/cmd_scan.c src/cmd_train.c src/cmd_eval.c src/cmd_predict.c \
          src/compute.c
LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/%.o)
CMD_OBJ = $(CMD_SRC:%.c=$(BUILD)/%.o)
UNIT    = test_zip test_pickle test_pth test_model test_module test_data test_plot test_safetensors
UNIT_BIN = $(UNIT:%=$(BUILD)/tests/%)
# helpers the Python tests run (not tests themselves: tests/run.sh runs test_* only)
TEST_TOOLS = $(BUILD)/tests/dump_tensors

FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= fuzz_zip fuzz_pickle fuzz_pth fuzz_scan fuzz_data fuzz_safetensors

.PHONY: all test test-large demo bench bench-images deps clean fuzz print-lib-src lib man install uninstall

all: $(BUILD)/vggtl $(BUILD)/libvggtl_shim.so

$(BUILD)/%.o: %.c $(wildcard include/*.h) $(wildcard src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS) $(CPPFLAGS) -c $< -o $@

$(BUILD)/libvt.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/vggtl: $(CMD_OBJ) $(BUILD)/libvt.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
	@[ "$(BUILD)" = build ] || ln -sf san/vggtl build/vggtl-san

# The shim is never built with sanitizers (libtorch is not instrumented); a sanitized
# vggtl loads the plain one.
# Two translation units (the network; c10d), compiled in parallel with make -j. SHIMDIR
# keeps a shim for another libtorch apart (tests/test_dist.py builds one for torch 2.6 in
# build/torch26 inside the Debian 13 root).
SHIMDIR ?= build
SHIM_OBJ = $(SHIMDIR)/shim/shim.o $(SHIMDIR)/shim/dist.o
$(SHIMDIR)/shim/%.o: shim/%.cpp shim/internal.hpp include/vt_shim.h
	@mkdir -p $(SHIMDIR)/shim
	$(CXX) -std=$(SHIM_STD) -fPIC $(SHIM_CXXFLAGS) -Iinclude $(TORCH_CPPFLAGS) -c $< -o $@

$(SHIMDIR)/libvggtl_shim.so: $(SHIM_OBJ)
	$(CXX) -shared $(SHIM_CXXFLAGS) $(SHIM_OBJ) -o $@ $(TORCH_LIBS)

ifneq ($(BUILD),build)
$(BUILD)/libvggtl_shim.so: build/libvggtl_shim.so
	@mkdir -p $(BUILD)
	ln -sf ../libvggtl_shim.so $@
endif

$(BUILD)/tests/%: tests/%.c tests/harness.h $(BUILD)/libvt.a
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) -Wno-missing-prototypes $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libvt.a $(LDLIBS)

# ---- the installable library, man pages, completion ---------------------------------------
# make install PREFIX=/usr/local DESTDIR=  (GNU conventions); make uninstall removes the same.
VERSION  = $(shell sed -n 's/^\#define VT_VERSION "\(.*\)"/\1/p' include/vggtl.h)
SOMAJOR  = $(firstword $(subst ., ,$(VERSION)))
PREFIX  ?= /usr/local
DESTDIR ?=
bindir   = $(PREFIX)/bin
libdir   = $(PREFIX)/lib
incdir   = $(PREFIX)/include/vggtl
man1dir  = $(PREFIX)/share/man/man1
compdir  = $(PREFIX)/share/bash-completion/completions
PIC_OBJ  = $(LIB_SRC:%.c=$(BUILD)/pic/%.o)
COMMANDS = load extend save-full save-weights train eval predict verify scan
HEADERS  = include/vggtl.h $(wildcard include/vt_*.h)

$(BUILD)/pic/%.o: %.c $(wildcard include/*.h) $(wildcard src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS) -fPIC $(CPPFLAGS) -c $< -o $@

# symbols outside vt_* (the internal helpers) stay hidden: src/libvggtl.map
$(BUILD)/libvggtl.so.$(SOMAJOR): $(PIC_OBJ) src/libvggtl.map
	$(CC) -shared -Wl,-soname,libvggtl.so.$(SOMAJOR) -Wl,--version-script=src/libvggtl.map $(LDFLAGS) \
		-o $@ $(PIC_OBJ) -lpng -ljpeg -larchive -lz -lm -ldl -lpthread

$(BUILD)/vggtl.pc: Makefile include/vggtl.h
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include/vggtl\n\nName: vggtl\nDescription: %s\nVersion: %s\nRequires.private: libpng libjpeg libarchive zlib\nLibs: -L$${libdir} -lvggtl\nLibs.private: -lm -ldl -lpthread\nCflags: -I$${includedir}\n' \
		'$(PREFIX)' 'read and write PyTorch .pth and safetensors files from C, without Python' '$(VERSION)' >$@

# man pages from the same usage texts and option tables that -h prints
$(BUILD)/man/vggtl.1: $(BUILD)/vggtl
	@mkdir -p $(dir $@)
	$(BUILD)/vggtl help --man >$@
	for c in $(COMMANDS); do $(BUILD)/vggtl $$c --man >$(BUILD)/man/vggtl-$$c.1 || exit 1; done

$(BUILD)/vggtl.bash: $(BUILD)/vggtl
	$(BUILD)/vggtl --bash-completion >$@

lib: $(BUILD)/libvggtl.so.$(SOMAJOR) $(BUILD)/libvt.a $(BUILD)/vggtl.pc
man: $(BUILD)/man/vggtl.1

install: all lib man $(BUILD)/vggtl.bash
	install -d $(DESTDIR)$(bindir) $(DESTDIR)$(libdir)/vggtl $(DESTDIR)$(libdir)/pkgconfig $(DESTDIR)$(incdir) \
		$(DESTDIR)$(man1dir) $(DESTDIR)$(compdir)
	install -m 755 $(BUILD)/vggtl $(DESTDIR)$(bindir)/vggtl
	install -m 755 build/libvggtl_shim.so $(DESTDIR)$(libdir)/vggtl/libvggtl_shim.so
	install -m 755 $(BUILD)/libvggtl.so.$(SOMAJOR) $(DESTDIR)$(libdir)/libvggtl.so.$(SOMAJOR)
	ln -sf libvggtl.so.$(SOMAJOR) $(DESTDIR)$(libdir)/libvggtl.so
	install -m 644 $(BUILD)/libvt.a $(DESTDIR)$(libdir)/libvggtl.a
	install -m 644 $(BUILD)/vggtl.pc $(DESTDIR)$(libdir)/pkgconfig/vggtl.pc
	install -m 644 $(HEADERS) $(DESTDIR)$(incdir)
	install -m 644 $(BUILD)/man/*.1 $(DESTDIR)$(man1dir)
	install -m 644 $(BUILD)/vggtl.bash $(DESTDIR)$(compdir)/vggtl

uninstall:
	rm -f $(DESTDIR)$(bindir)/vggtl $(DESTDIR)$(libdir)/vggtl/libvggtl_shim.so \
		$(DESTDIR)$(libdir)/libvggtl.so.$(SOMAJOR) $(DESTDIR)$(libdir)/libvggtl.so $(DESTDIR)$(libdir)/libvggtl.a \
		$(DESTDIR)$(libdir)/pkgconfig/vggtl.pc $(DESTDIR)$(compdir)/vggtl $(DESTDIR)$(man1dir)/vggtl.1 \
		$(addprefix $(DESTDIR)$(man1dir)/vggtl-,$(addsuffix .1,$(COMMANDS))) \
		$(addprefix $(DESTDIR)$(incdir)/,$(notdir $(HEADERS)))
	-rmdir $(DESTDIR)$(incdir) $(DESTDIR)$(libdir)/vggtl 2>/dev/null

deps:
	sh tools/install-deps.sh

# deps first: the compiler needs the packages' headers
test: deps
	$(MAKE) --no-print-directory $(BUILD)/vggtl $(BUILD)/libvggtl_shim.so $(UNIT_BIN) $(TEST_TOOLS)
	BUILD=$(BUILD) PYTHON=$(PYTHON) sh tests/run.sh

# opt-in: files over 4 GiB (zip64), about 10 GB of disk and memory, a few minutes; and the
# large torchvision families (resnet50, convnext_tiny, vit_b_16, swin_t...) of the any-model tests
test-large: deps
	$(MAKE) --no-print-directory $(BUILD)/vggtl
	VGGTL=$(BUILD)/vggtl $(PYTHON) tests/large/test_zip64.py
	LARGE=1 VGGTL=$(BUILD)/vggtl $(PYTHON) tests/test_anymodel.py

demo: deps
	$(MAKE) --no-print-directory $(BUILD)/vggtl $(BUILD)/libvggtl_shim.so
	sh tools/demo.sh $(BUILD)/vggtl

bench: deps
	$(MAKE) --no-print-directory $(BUILD)/vggtl $(BUILD)/libvggtl_shim.so $(BUILD)/tools/bench_images
	PYTHON=$(PYTHON) sh tools/bench.sh $(BUILD)/vggtl

# the image-loading row of make bench alone (a minute or two, against the full bench's 15)
bench-images: $(BUILD)/vggtl $(BUILD)/tools/bench_images
	BENCH_ONLY=images PYTHON=$(PYTHON) sh tools/bench.sh $(BUILD)/vggtl

$(BUILD)/tools/%: tools/%.c $(BUILD)/libvt.a
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) -Wno-missing-prototypes $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libvt.a $(LDLIBS)

# libFuzzer targets (clang): built into build/fuzz/, each run FUZZ_SECONDS on a scratch
# corpus build/fuzz/corpus-NAME seeded from tests/fixtures/ (tools/fuzz.sh)
fuzz:
	LIB_SRC="$(LIB_SRC)" FUZZ_SECONDS=$(FUZZ_SECONDS) sh tools/fuzz.sh $(FUZZ_TARGETS)

print-lib-src:
	@echo $(LIB_SRC)

clean:
	rm -rf build
