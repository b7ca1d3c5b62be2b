from rest_framework.authentication import BaseAuthentication

from accounts.users import default_user, multi_user


class SingleUserAuthentication(BaseAuthentication):
    """In single-user mode every API request is ``defaultuser``; in multi-user mode it abstains."""

    def authenticate(self, request):
        if multi_user():
            return None
        return (default_user(), None)
