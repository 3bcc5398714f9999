using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace RsCapRet.Web;

/// <summary>
/// Issue 29: `serve` does not log every request at information (ASP.NET Core's "Request starting / finished" and
/// "Executing endpoint" lines: 7,688 lines in ten minutes of one person browsing). Each request is one line at debug
/// (category RsCapRet.Web.Requests), and a summary at information every RSCAPRET_REQUEST_SUMMARY_SECONDS (default
/// 600; 0: none) when there were requests. RSCAPRET_REQUEST_LOG: "summary" (default), "debug" (the per-request lines
/// shown), "info" (ASP.NET Core's own per-request lines too, as before).
/// </summary>
public static class RequestLogging
{
    public const string Category = "RsCapRet.Web.Requests";
    public const string ModeVariable = "RSCAPRET_REQUEST_LOG";
    public const string SummaryVariable = "RSCAPRET_REQUEST_SUMMARY_SECONDS";

    /// <summary>ASP.NET Core's categories that write a line (or two) per request at information.</summary>
    public static readonly IReadOnlyList<string> PerRequestCategories =
    [
        "Microsoft.AspNetCore.Hosting.Diagnostics", "Microsoft.AspNetCore.Routing.EndpointMiddleware",
        "Microsoft.AspNetCore.Http.Result", "Microsoft.AspNetCore.StaticFiles", "Microsoft.AspNetCore.Routing.EndpointRoutingMiddleware",
    ];

    public static void Configure(ILoggingBuilder logging, string? setting)
    {
        var mode = ParseMode(setting) ?? throw new ArgumentException($"{ModeVariable}: must be summary, debug or info, got '{setting}'");
        if (mode != "info")
            foreach (var category in PerRequestCategories) logging.AddFilter(category, LogLevel.Warning);
        if (mode is "debug" or "info") logging.AddFilter(Category, LogLevel.Debug);
    }

    /// <summary>summary, debug or info (blank: summary); null for anything else.</summary>
    public static string? ParseMode(string? setting)
    {
        var mode = string.IsNullOrWhiteSpace(setting) ? "summary" : setting.Trim().ToLowerInvariant();
        return mode is "summary" or "debug" or "info" ? mode : null;
    }

    /// <summary>Every <paramref name="seconds"/> (<see cref="WebOptions.RequestSummarySeconds"/>); null: no summary.</summary>
    public static TimeSpan? SummaryInterval(int seconds) => seconds == 0 ? null : TimeSpan.FromSeconds(seconds);

    /// <summary>Counts requests (and logs each at debug); a timer writes the summary.</summary>
    public static void UseRequestLogging(this WebApplication app, TimeSpan? summaryEvery)
    {
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(Category);
        var counts = new RequestCounts();
        app.Use(async (ctx, next) =>
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            try { await next(ctx); }
            finally
            {
                counts.Add(ctx.Response.StatusCode);
                if (log.IsEnabled(LogLevel.Debug))
                    log.LogDebug("{Method} {Path} {Status} {Ms:F0} ms", ctx.Request.Method, ctx.Request.Path.Value, ctx.Response.StatusCode,
                        System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
        });
        if (summaryEvery is not { } every) return;
        var timer = new Timer(_ =>
        {
            if (counts.Take() is { Total: > 0 } c && log.IsEnabled(LogLevel.Information))
                log.LogInformation("{Total} requests in the last {Seconds:F0} s ({Client} 4xx, {Server} 5xx)", c.Total, every.TotalSeconds, c.Client, c.Server);
        }, null, every, every);
        app.Lifetime.ApplicationStopping.Register(() => timer.Dispose());
    }

    public sealed class RequestCounts
    {
        private long _total, _client, _server;

        public void Add(int status)
        {
            Interlocked.Increment(ref _total);
            if (status is >= 400 and < 500) Interlocked.Increment(ref _client);
            else if (status >= 500) Interlocked.Increment(ref _server);
        }

        public (long Total, long Client, long Server) Take() =>
            (Interlocked.Exchange(ref _total, 0), Interlocked.Exchange(ref _client, 0), Interlocked.Exchange(ref _server, 0));
    }
}
