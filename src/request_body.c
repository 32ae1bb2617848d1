/* The JSON body of a query request, built with cJSON. */
#include "la_core.h"

#include <cjson/cJSON.h>

char *la_query_body(const char *query, const char *timespan,
                    const char *const *workspaces, size_t nworkspaces)
{
    cJSON *body = cJSON_CreateObject();
    cJSON *list;
    char *text = NULL;
    size_t i;
    if (!body || !cJSON_AddStringToObject(body, "query", query))
        goto done;
    if (timespan && !cJSON_AddStringToObject(body, "timespan", timespan))
        goto done;
    if (nworkspaces) {
        list = cJSON_AddArrayToObject(body, "workspaces");
        if (!list)
            goto done;
        for (i = 0; i < nworkspaces; i++) {
            cJSON *item = cJSON_CreateString(workspaces[i]);
            if (!item || !cJSON_AddItemToArray(list, item)) {
                cJSON_Delete(item);
                goto done;
            }
        }
    }
    text = cJSON_PrintUnformatted(body);
done:
    cJSON_Delete(body);
    return text;
}
