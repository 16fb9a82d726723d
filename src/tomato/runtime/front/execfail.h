/* execfail.c: the words of a failed execve (process.exec_failure's). */
#ifndef TOMATO_EXECFAIL_H
#define TOMATO_EXECFAIL_H

#include <stddef.h>

/* "exec PATH: REASON" or "exec PATH: interpreter \"I\": REASON", into OUT. */
void exec_failure_words(const char *executable, int err, char *out, size_t size);

#endif
