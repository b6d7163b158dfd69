# A package, so that `python -m benchmarks.bench` (run from the repository
# root) runs the benchmark's command line with its parts (benchmarks.cases,
# benchmarks.timing, ...) imported as one package's modules.
