"""The root ``Mutation`` type: one module per mutation (input, payload, resolver)."""

from __future__ import annotations

import strawberry

from api.mutations.complete_email_connection import complete_email_connection
from api.mutations.configure_sub_account_email_provider import configure_sub_account_email_provider
from api.mutations.create_api_key import create_api_key
from api.mutations.create_contact import create_contact
from api.mutations.create_sub_account import create_sub_account
from api.mutations.create_user import create_user
from api.mutations.delete_contact import delete_contact
from api.mutations.disconnect_email_connection import disconnect_email_connection
from api.mutations.mark_thread_read import mark_thread_read
from api.mutations.request_sync import request_sync
from api.mutations.revoke_api_key import revoke_api_key
from api.mutations.send_bulk_email import send_bulk_email
from api.mutations.send_email import send_email
from api.mutations.send_workflow_email import send_workflow_email
from api.mutations.set_labs_feature import set_labs_feature
from api.mutations.start_email_connection import start_email_connection
from api.mutations.update_contact import update_contact
from api.mutations.update_email_connection import update_email_connection
from api.permissions import IsAdmin, IsAgencyKey, IsMember, IsUser


@strawberry.type(description="Write entry points. Expected failures come back as `userErrors` in the payload.")
class Mutation:
    start_email_connection = strawberry.mutation(
        resolver=start_email_connection,
        description="Start connecting the caller's mailbox (or replacing it): returns the provider sign-in URL.",
        permission_classes=[IsUser],
    )
    update_email_connection = strawberry.mutation(
        resolver=update_email_connection,
        description="Switch the caller's connected mailbox to another one (\"update email\"): once the new sign-in "
        "completes, new emails go out through it and the old mailbox stops syncing. Returns the sign-in URL.",
        permission_classes=[IsUser],
    )
    complete_email_connection = strawberry.mutation(
        resolver=complete_email_connection,
        description="Finish a mailbox sign-in (started by startEmailConnection or updateEmailConnection) with the "
        "`emailConnectionFlow` token the browser came back with: connects the mailbox. Only the user who started "
        "the sign-in can complete it, once, within minutes; any other token answers NOT_FOUND.",
        permission_classes=[IsUser],
    )
    disconnect_email_connection = strawberry.mutation(
        resolver=disconnect_email_connection,
        description="Disconnect the caller's mailbox: sync stops both ways, tokens are erased.",
        permission_classes=[IsUser],
    )
    request_sync = strawberry.mutation(
        resolver=request_sync,
        description="Ask for a sync pass of the caller's mailbox now.",
        permission_classes=[IsUser],
    )
    send_email = strawberry.mutation(
        resolver=send_email,
        description="Send an email to contacts (a reply when `threadId` is set): through the caller's mailbox, or "
        "the sub-account's email provider when they have none (see `resolveSender`).",
        permission_classes=[IsUser],
    )
    send_bulk_email = strawberry.mutation(
        resolver=send_bulk_email,
        description="Send the same email to many contacts, one delivery each, paced to the route's limits. Follow "
        "it with `bulkSendEvents` or the returned `BulkSend` node.",
        permission_classes=[IsUser],
    )
    send_workflow_email = strawberry.mutation(
        resolver=send_workflow_email,
        description="Send a workflow/automation email (partner apps): always through the sub-account's email "
        "provider, never synced. Users and sub-account API keys.",
        permission_classes=[IsMember],
    )
    configure_sub_account_email_provider = strawberry.mutation(
        resolver=configure_sub_account_email_provider,
        description="Set the sub-account's email provider (an SMTP relay), after a connection test (admins).",
        permission_classes=[IsAdmin],
    )
    mark_thread_read = strawberry.mutation(
        resolver=mark_thread_read,
        description="Mark a thread read or unread; the mailbox follows.",
        permission_classes=[IsMember],
    )
    set_labs_feature = strawberry.mutation(
        resolver=set_labs_feature,
        description="Turn the sub-account's labs flags on or off (admins).",
        permission_classes=[IsAdmin],
    )
    create_contact = strawberry.mutation(
        resolver=create_contact, description="Create a contact.", permission_classes=[IsMember]
    )
    update_contact = strawberry.mutation(
        resolver=update_contact, description="Change a contact.", permission_classes=[IsMember]
    )
    delete_contact = strawberry.mutation(
        resolver=delete_contact, description="Delete a contact (its threads stay).", permission_classes=[IsMember]
    )
    create_sub_account = strawberry.mutation(
        resolver=create_sub_account,
        description="Create a sub-account in the caller's agency (agency API keys).",
        permission_classes=[IsAgencyKey],
    )
    create_user = strawberry.mutation(
        resolver=create_user,
        description="Create a user in a sub-account of the caller's agency (agency API keys).",
        permission_classes=[IsAgencyKey],
    )
    create_api_key = strawberry.mutation(
        resolver=create_api_key,
        description="Create a partner API key (agency keys, or admins for their own sub-account). "
        "The secret is returned once.",
    )
    revoke_api_key = strawberry.mutation(
        resolver=revoke_api_key,
        description="Revoke a partner API key: it stops authenticating at once, and WebSocket sessions opened with "
        "it are closed. Admins for their sub-account's keys; agency keys for the agency's and its sub-accounts'.",
    )
