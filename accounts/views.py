"""Account pages: log in, register, log out (Django's view), API tokens, and a token for a script
on this machine (``accounts.loopback``)."""

from django.contrib import admin, messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView as DjangoLoginView
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts import loopback, oidc, tokens
from accounts.exceptions import RegistrationClosed, UsernameTaken
from accounts.forms import RegisterForm, TokenForm
from accounts.secrets import expires_in
from accounts.throttling import form_wait
from accounts.users import local_login, register_user, registration_open
from bokehsite import pages
from documents import quota


def _throttled(request: HttpRequest, template: str, context: dict, wait: float) -> HttpResponse:
    context = {**context, "throttled": f"Too many attempts. Try again in {int(wait) + 1} seconds."}
    response = render(request, template, context, status=429)
    response["Retry-After"] = str(int(wait) + 1)
    return response


class LoginView(DjangoLoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        if not local_login():
            context = self.get_context_data(form=self.get_form())
            return render(request, self.template_name, {**context, "refused": "This server takes no passwords."},
                          status=403)
        wait = form_wait(request, "login")
        if wait is not None:
            return _throttled(request, self.template_name, self.get_context_data(form=self.get_form()), wait)
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        sso = {"sso_provider": oidc.provider_name()} if oidc.enabled() else {}
        return {**super().get_context_data(**kwargs), "registration_open": registration_open(),
                "local_login": local_login(), **sso}


def admin_login(request: HttpRequest) -> HttpResponse:
    """The admin's login form; without local passwords, the login page (single sign-on) instead."""
    if local_login():
        return admin.site.login(request)
    return redirect_to_login(request.GET.get("next") or "/admin/")


@require_http_methods(["GET", "POST"])
def register(request: HttpRequest) -> HttpResponse:
    template = "accounts/register.html"
    if not registration_open():
        return render(request, template, {"closed": True}, status=403)
    form = RegisterForm(request.POST or None)
    if request.method == "POST":
        wait = form_wait(request, "register")
        if wait is not None:
            return _throttled(request, template, {"form": form}, wait)
        if form.is_valid():
            try:
                user = register_user(form.cleaned_data["username"], form.cleaned_data["password1"])
            except (UsernameTaken, RegistrationClosed) as e:
                form.add_error("username", e.detail)
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                return redirect("documents:list")
    return render(request, template, {"form": form}, status=400 if form.errors else 200)


def _create_token(request: HttpRequest, form: TokenForm) -> dict:
    """Makes a token; its secret is shown this once. An invalid form shows its errors."""
    if not form.is_valid():
        return {}
    days = form.cleaned_data.get("expires_in_days")
    token, secret = tokens.create_token(request.user, form.cleaned_data["name"], expires=expires_in(days))
    return {"created": {"token": token, "secret": secret}, "form": TokenForm()}


def _revoke_token(request: HttpRequest, form: TokenForm) -> None:
    token = tokens.get_token(request.user, request.POST.get("id"))
    if token is not None:
        tokens.revoke_token(token)
        messages.success(request, f"Revoked {token.prefix}… ({token.name}).")


def _show_again(request: HttpRequest, form: TokenForm) -> dict:
    """A form that names neither action: the page, as a GET shows it."""
    return {}


TOKEN_ACTIONS: dict[str, pages.Handler] = {"create": _create_token, "revoke": _revoke_token}


@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    """List, create (the secret is shown once, in this answer) and revoke API tokens."""
    form = TokenForm(request.POST if request.POST.get("action") == "create" else None)
    shown = None
    if request.method == "POST":
        shown = pages.dispatch(request, TOKEN_ACTIONS, form, otherwise=_show_again)
        if shown is None:
            return redirect("accounts:tokens")
    context = {"form": form, "tokens": tokens.tokens_of(request.user), "created": None,
               "storage": quota.usage(request.user.pk), **(shown or {})}
    created = context["created"]
    response = render(request, "accounts/tokens.html", context, status=400 if context["form"].errors else 200)
    if created:
        response["Cache-Control"] = "no-store"  # the secret must not stay in any cache
    return response


@login_required
@require_http_methods(["GET", "POST"])
def authorize_token(request: HttpRequest) -> HttpResponse:
    """A script on this machine asks for an API token (``Session.login_browser()``): the user
    confirms, and the browser hands the token to the script's loopback address."""
    try:
        asked = loopback.TokenRequest.parse(request.GET)
    except loopback.BadTokenRequest as e:
        return render(request, "accounts/authorize_token.html", {"error": e}, status=400)
    if request.method == "GET":
        return render(request, "accounts/authorize_token.html", {"asked": asked, "name": loopback.token_name()})
    if request.POST.get("action") != "allow":
        return HttpResponseRedirect(loopback.refusal(asked))
    _, answer = loopback.grant(request.user, asked)
    response = HttpResponseRedirect(answer)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response
