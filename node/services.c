#include "node/services.h"
#include "node/pop3_service.h"
#include "node/smtp_service.h"

/* Engines are added here as they land (SMTP, IMAP, POP3, HTTP issues). */
static const struct service_ops *const engines[SERVICE_COUNT] = {
	[SERVICE_SMTP] = &smtp_service_ops,
	[SERVICE_SUBMISSION] = &smtp_service_ops,
	[SERVICE_SMTPS] = &smtp_service_ops,
	[SERVICE_POP3] = &pop3_service_ops,
	[SERVICE_POP3S] = &pop3_service_ops,
};

const struct service_ops *services_engine(enum node_config_service_id id)
{
	return id < SERVICE_COUNT ? engines[id] : NULL;
}
