using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Npgsql;

namespace RsCapRet.Web;

/// <summary>
/// Every error the web host answers is a JSON problem (<see cref="ApiProblem"/>: application/problem+json with title,
/// status, detail and the message as "error" too), never an empty body or a stack trace: a database that
/// cannot be reached is a 503 with a message; any other unhandled failure a 500 that names no internals; bodiless
/// 4xx/5xx (unknown routes, wrong methods) get their status text. A GET that fails on a connection the database
/// dropped (a restart leaves dead connections in the pool) is retried once on a fresh connection.
/// An over-long URL is a 414 with a message too: Kestrel answers the requests it rejects itself with empty bodies
/// and no way to change them, so it reads request lines up to <see cref="KestrelRequestLineLimit"/> and the
/// application refuses URLs over <see cref="MaxUrlLength"/> (Kestrel's own default limit).
/// </summary>
public static class JsonErrors
{
    /// <summary>The longest request target (path and query) the application accepts.</summary>
    public const int MaxUrlLength = 8 * 1024;

    /// <summary>
    /// The longest request line Kestrel reads and hands on; longer ones get Kestrel's bodiless 414. Raising it further
    /// would let each connection hold more memory before it is refused.
    /// </summary>
    public const int KestrelRequestLineLimit = 64 * 1024;

    /// <summary>Kestrel's limits for <see cref="UseJsonErrors"/>: use with <c>builder.WebHost.ConfigureKestrel</c>.</summary>
    public static void ConfigureKestrel(KestrelServerOptions options) => options.Limits.MaxRequestLineSize = KestrelRequestLineLimit;

    public static IApplicationBuilder UseJsonErrors(this IApplicationBuilder app)
    {
        app.Use(async (ctx, next) =>
        {
            var target = ctx.Features.Get<IHttpRequestFeature>()?.RawTarget ?? ctx.Request.Path + ctx.Request.QueryString;
            if (target.Length <= MaxUrlLength) { await next(ctx); return; }
            await ApiProblem.WriteAsync(ctx, StatusCodes.Status414UriTooLong,
                $"the request URL is {target.Length} characters long; at most {MaxUrlLength} are accepted");
        });
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            ExceptionHandler = async ctx =>
            {
                var error = ctx.Features.Get<IExceptionHandlerFeature>()?.Error;
                var (status, message) = IsDatabaseOutage(error)
                    ? (StatusCodes.Status503ServiceUnavailable, "the catalogue database is not reachable; try again shortly")
                    : (StatusCodes.Status500InternalServerError, "internal error (see the server log)");
                if (status == StatusCodes.Status503ServiceUnavailable) ctx.Response.Headers.RetryAfter = "5";
                await ApiProblem.WriteAsync(ctx, status, message);
            },
        });
        app.Use(async (ctx, next) =>
        {
            if (!HttpMethods.IsGet(ctx.Request.Method) && !HttpMethods.IsHead(ctx.Request.Method)) { await next(ctx); return; }
            try { await next(ctx); }
            catch (Exception e) when (IsDatabaseOutage(e) && !ctx.Response.HasStarted)
            {
                NpgsqlConnection.ClearAllPools();   // drop connections the server closed; the retry opens new ones
                await next(ctx);
            }
        });
        app.UseStatusCodePages(async status =>
        {
            var response = status.HttpContext.Response;
            if (response.ContentLength is > 0 || response.ContentType is not null) return;
            await ApiProblem.WriteAsync(status.HttpContext, response.StatusCode, ReasonPhrase(response.StatusCode));
        });
        return app;
    }

    public static bool IsDatabaseOutage(Exception? e) => e switch
    {
        NpgsqlException n => n.IsTransient || n.InnerException is SocketException or IOException || n is PostgresException { SqlState: "57P01" or "57P02" or "57P03" },
        SocketException or TimeoutException => true,
        AggregateException a => a.InnerExceptions.Any(IsDatabaseOutage),
        _ => e?.InnerException is { } inner && IsDatabaseOutage(inner),
    };

    private static string ReasonPhrase(int status) =>
        Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status) is { Length: > 0 } r ? r.ToLowerInvariant() : $"HTTP {status}";
}
