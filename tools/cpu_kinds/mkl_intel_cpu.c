/* Make MKL take the code paths it takes on an Intel CPU.
 *
 * MKL picks its kernels by the CPU's vendor as well as by its instruction sets: on an AMD CPU
 * it answers "not Intel" from these two functions and takes other GEMM and LAPACK paths, so
 * float32 training prints other last digits there (tools/booktools/reference.py). torch's
 * wheels export both functions from libtorch_cpu.so, and MKL calls them through the PLT, so a
 * library loaded first (LD_PRELOAD) that answers "Intel" takes their place. On an AMD CPU with
 * AVX-512 this reproduces the numerics of an Intel CPU with AVX-512 (the fingerprint of the
 * notebooks/reference-4bef3deece43/ set); tools/cpu_kinds/as_intel.sh builds and loads it.
 * Our own code, written here; it changes no result on an Intel CPU.
 */
int mkl_serv_intel_cpu_true(void) { return 1; }
int mkl_serv_intel_cpu(void) { return 1; }
