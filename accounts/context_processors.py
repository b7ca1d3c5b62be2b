from django.utils.functional import SimpleLazyObject

from accounts.users import acting_user as _acting_user
from accounts.users import multi_user


def acting_user(request):
    return {"acting_user": SimpleLazyObject(lambda: _acting_user(request)), "multi_user": multi_user()}
