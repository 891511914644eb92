# todo_service(NAME target SOURCES … [MIGRATIONS dir SYMBOL sym]): one service executable linking
# libtodo_common, with its SQL migrations embedded.
function(todo_service target)
  cmake_parse_arguments(S "" "MIGRATIONS;SYMBOL" "SOURCES" ${ARGN})
  set(sources ${S_SOURCES})
  if(S_MIGRATIONS)
    file(GLOB sql CONFIGURE_DEPENDS ${S_MIGRATIONS}/*.sql)
    set(out ${CMAKE_CURRENT_BINARY_DIR}/${target}_migrations.c)
    add_custom_command(OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -DDIR=${S_MIGRATIONS} -DOUT=${out} -DSYMBOL=${S_SYMBOL}
              -P ${PROJECT_SOURCE_DIR}/cmake/embed_migrations.cmake
      DEPENDS ${sql} ${PROJECT_SOURCE_DIR}/cmake/embed_migrations.cmake
      COMMENT "Embedding migrations of ${target}")
    list(APPEND sources ${out})
  endif()
  add_executable(${target} ${sources})
  target_compile_options(${target} PRIVATE ${TODO_WARNINGS})
  target_include_directories(${target} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(${target} PRIVATE todo_common)
endfunction()
