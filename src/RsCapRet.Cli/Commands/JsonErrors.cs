using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Npgsql;

namespace RsCapRet.Cli.Commands;

/// <summary>
/// Every error the web host answers is JSON ({"error": ...}), never an empty body or a stack trace: a database that
/// cannot be reached is a 503 with a message; any other unhandled failure a 500 that names no internals; bodiless
/// 4xx/5xx (unknown routes, wrong methods) get their status text. A GET that fails on a connection the database
/// dropped (a restart leaves dead connections in the pool) is retried once on a fresh connection.
/// </summary>
public static class JsonErrors
{
    public static IApplicationBuilder UseJsonErrors(this IApplicationBuilder app)
    {
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            ExceptionHandler = async ctx =>
            {
                var error = ctx.Features.Get<IExceptionHandlerFeature>()?.Error;
                var (status, message) = IsDatabaseOutage(error)
                    ? (StatusCodes.Status503ServiceUnavailable, "the catalogue database is not reachable; try again shortly")
                    : (StatusCodes.Status500InternalServerError, "internal error (see the server log)");
                ctx.Response.StatusCode = status;
                if (status == StatusCodes.Status503ServiceUnavailable) ctx.Response.Headers.RetryAfter = "5";
                await ctx.Response.WriteAsJsonAsync(new { error = message });
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
            await response.WriteAsJsonAsync(new { error = ReasonPhrase(response.StatusCode) });
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
