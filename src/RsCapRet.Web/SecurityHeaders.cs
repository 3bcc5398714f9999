using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace RsCapRet.Web;

/// <summary>
/// Headers on every response of the host (pages, API answers, static files, errors): a Content-Security-Policy that
/// allows scripts, styles, images and requests from this origin only — no inline script, no eval, no plugins, no
/// framing — plus X-Content-Type-Options: nosniff, X-Frame-Options: DENY and Referrer-Policy: no-referrer. The
/// Hangfire dashboard (/hangfire) gets <see cref="DashboardPolicy"/>, which also allows inline styles (its pages set
/// style attributes and its charts add style elements) but is otherwise as strict: scripts from this origin only.
/// </summary>
public static class SecurityHeaders
{
    public const string Policy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; " +
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

    public const string DashboardPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; " +
        "font-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

    public static IApplicationBuilder UseSecurityHeaders(this IApplicationBuilder app) =>
        app.Use((ctx, next) =>
        {
            var policy = ctx.Request.Path.StartsWithSegments("/hangfire") ? DashboardPolicy : Policy;
            // At the moment the response starts: error handlers clear the headers set before them.
            ctx.Response.OnStarting(() =>
            {
                var h = ctx.Response.Headers;
                h.ContentSecurityPolicy = policy;
                h.XContentTypeOptions = "nosniff";
                h.XFrameOptions = "DENY";
                h["Referrer-Policy"] = "no-referrer";
                h["Cross-Origin-Opener-Policy"] = "same-origin";
                return Task.CompletedTask;
            });
            return next(ctx);
        });
}
