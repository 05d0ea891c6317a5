#include "node/services.h"

/* Engines are added here as they land (SMTP, IMAP, POP3, HTTP issues). */
static const struct service_ops *const engines[SERVICE_COUNT];

const struct service_ops *services_engine(enum node_config_service_id id)
{
	return id < SERVICE_COUNT ? engines[id] : NULL;
}
