
/*
 * What a JSON body must be, beyond JSON's own grammar, for PostgreSQL to
 * store it: text PostgreSQL takes as UTF-8 and as jsonb, and numbers
 * jsonb's numeric can hold.  A body PostgreSQL would refuse must be a
 * 400: answered 503 it would be retried for ever.  Pure: no nginx code.
 */


#ifndef _NGX_HTTP_RETELL_JSON_H_INCLUDED_
#define _NGX_HTTP_RETELL_JSON_H_INCLUDED_


#include <stddef.h>


/* 0, or -1 with *why set: invalid UTF-8, or an unpaired surrogate escape */
int ngx_http_retell_json_check_text(const unsigned char *p, size_t len,
    const char **why);

/* 0 when jsonb's numeric can hold this JSON number, -1 when it cannot */
int ngx_http_retell_json_check_number(const unsigned char *p, size_t len);

/*
 * 0 when nothing but white space follows the first JSON value of a text
 * yajl accepted, -1 when something does: yajl takes the start of a
 * string after a complete value ({...}") as a token still to come and
 * says the text is whole, where jsonb refuses it
 */
int ngx_http_retell_json_check_end(const unsigned char *p, size_t len);


#endif /* _NGX_HTTP_RETELL_JSON_H_INCLUDED_ */
