"""The CPU description printed beside every CPU timing."""

from segedge.cpuinfo import cpu_info, parse_cpuinfo

# Excerpts in the layout Linux prints (flags abridged).
EPYC = "processor\t: 0\nmodel name\t: AMD EPYC 9R14 96-Core Processor\nflags\t\t: fpu sse4_2 avx2 fma avx512f avx512bw avx512_vnni avx512_bf16\n"
HASWELL = "model name\t: Intel(R) Core(TM) i7-4770 CPU @ 3.40GHz\nflags\t\t: fpu sse4_2 avx2 fma\n"
ORIN = "processor\t: 0\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n"


def test_vnni_cpu_is_named_and_counts_as_int8_capable():
    info = parse_cpuinfo(EPYC, "x86_64", 2)
    assert info.model == "AMD EPYC 9R14 96-Core Processor"
    assert info.isa == "x86_64 AVX2 AVX-512 VNNI BF16"
    assert info.int8_dot_product


def test_avx2_only_cpu_has_no_int8_dot_product():
    info = parse_cpuinfo(HASWELL, "x86_64")
    assert info.isa == "x86_64 AVX2"
    assert not info.int8_dot_product


def test_arm_dot_product_from_features_line():
    info = parse_cpuinfo(ORIN, "aarch64", 6)
    assert info.isa == "aarch64 NEON dot product"
    assert info.int8_dot_product
    assert info.model == "aarch64"  # Orin's cpuinfo has no model name line


def test_this_machine_is_described():
    info = cpu_info()
    assert info.cores >= 1 and info.arch in info.describe()
