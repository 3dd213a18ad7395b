# Warnings, sanitizers and optional -march=native for memsgd's own targets only.
function(memsgd_set_flags target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow)
  # No silent FMA contraction (GCC contracts a += b * c by default, even with -std=c++20, as soon
  # as the target has FMA): a -march=native build and the portable build must compute the same
  # bits, and the solvers that are tested to replay each other (Mem-SGD / EF14, the kernels'
  # ISAs) must round the same way. Where a fused multiply-add is meant, the code says std::fma
  # or uses the FMA intrinsic (kernels::MemoryL2).
  target_compile_options(${target} PRIVATE -ffp-contract=off)
  if(MEMSGD_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(MEMSGD_NATIVE)
    target_compile_options(${target} PRIVATE -march=native)
  endif()
endfunction()

if(MEMSGD_SANITIZER)
  string(REPLACE ";" "," _san "${MEMSGD_SANITIZER}")
  add_compile_options(-fsanitize=${_san} -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=${_san})
  if(_san MATCHES "thread")
    # Workers on std::thread, TBB algorithms serial: see include/memsgd/worker_pool.hpp.
    add_compile_definitions(MEMSGD_STD_THREADS=1)
  endif()
  if(_san MATCHES "undefined")
    add_compile_options(-fno-sanitize-recover=undefined)
  endif()
endif()
