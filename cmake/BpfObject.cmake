# bpf_object(NAME SOURCE [INCLUDES dirs...])
# Compiles SOURCE with clang -target bpf and turns the object into a bpftool
# skeleton header <NAME>.skel.h. The object is embedded in the skeleton, so
# nothing is looked up on disk at run time. Produces an INTERFACE target NAME
# whose include path holds the skeleton.
find_program(BPF_CLANG NAMES clang clang-14 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)

function(bpf_object name source)
  cmake_parse_arguments(ARG "" "" "INCLUDES" ${ARGN})
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/bpf)
  set(obj ${out_dir}/${name}.bpf.o)
  set(skel ${out_dir}/${name}.skel.h)
  set(include_flags)
  foreach(dir ${ARG_INCLUDES})
    list(APPEND include_flags -I${dir})
  endforeach()
  execute_process(COMMAND uname -m OUTPUT_VARIABLE arch OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(arch STREQUAL "x86_64")
    set(target_arch __TARGET_ARCH_x86)
  else()
    set(target_arch __TARGET_ARCH_${arch})
  endif()
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -D${target_arch} -Wall -Werror
            -I/usr/include/${CMAKE_LIBRARY_ARCHITECTURE} ${include_flags}
            -c ${CMAKE_CURRENT_SOURCE_DIR}/${source} -o ${obj}
    DEPENDS ${source}
    IMPLICIT_DEPENDS C ${CMAKE_CURRENT_SOURCE_DIR}/${source}
    COMMENT "BPF ${source}")
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}
    DEPENDS ${obj}
    COMMENT "BPF skeleton ${name}.skel.h")
  add_custom_target(${name}_skel DEPENDS ${skel})
  add_library(${name} INTERFACE)
  add_dependencies(${name} ${name}_skel)
  target_include_directories(${name} SYSTEM INTERFACE ${out_dir})
endfunction()
