"""`convis bench`: benchmarks that print figures and assert nothing.

`image` (one image: the index against the reference loop, map latency, the bank) and
`progressive` (time to the first coarse stage; fp32, int8 and GEMM rates measured interleaved).
"""
