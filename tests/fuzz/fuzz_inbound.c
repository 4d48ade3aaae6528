/* libFuzzer target: the inbound parser and classifier (message.c, html.c,
 * bounce.c, inbound.c) on arbitrary bytes, as an MTA pipe could hand them
 * to coursectl inbound. Built with clang -fsanitize=fuzzer,address,undefined
 * (cmake -DCOURSED_FUZZ=ON); ./scripts/test runs it for 60 seconds over a
 * seed corpus made of tests/fixtures/inbound. */
#include <stdint.h>
#include <string.h>
#include "config.h"
#include "inbound.h"
#include "message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct config cfg;
    static const char *const courses[] = { "release", "leaving-kindly", "test", NULL };
    cfg.domain = (char *)"courses.example.org";
    message_init();
    struct inbound *r = inbound_classify((const char *)data, size, &cfg, courses, NULL, NULL);
    char *json = inbound_to_json(r, NULL);
    /* The JSON must stay one line: nothing raw from the input in it. */
    if (strchr(json, '\n'))
        __builtin_trap();
    g_free(json);
    inbound_free(r);
    /* And with an envelope, as Postfix's pipe passes it. */
    r = inbound_classify((const char *)data, size, &cfg, courses, "",
                         "bounces+YgAAAAAAKgAAAACkq9ZfJr3mXm1v0aQ@courses.example.org");
    inbound_free(r);
    return 0;
}
