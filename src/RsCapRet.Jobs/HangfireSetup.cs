using Hangfire;
using Hangfire.PostgreSql;
using Npgsql;

namespace RsCapRet.Jobs;

/// <summary>
/// Hangfire on the catalogue's PostgreSQL (schema "hangfire"): every worker process, on this machine or others,
/// pulls from the same queues, and Hangfire's distributed locks keep a job on one worker at a time.
/// </summary>
public static class HangfireSetup
{
    public const string Schema = "hangfire";

    public static IGlobalConfiguration UseRsCapRetStorage(this IGlobalConfiguration config, JobStorage storage) =>
        config
            .SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
            .UseSimpleAssemblyNameTypeSerializer()
            .UseRecommendedSerializerSettings()
            .UseStorage(storage)
            .UseFilter(TransientRetry.Filter())
            .UseJobPageSections();

    private static int _jobPageSectionsAdded;

    /// <summary>
    /// The sections of a job's dashboard page: arguments and warnings, progress bar, a scan's decisions. Hangfire keeps
    /// one process-wide list of them, so they are added once, however many hosts a process configures (the demo, tests).
    /// </summary>
    private static IGlobalConfiguration UseJobPageSections(this IGlobalConfiguration config)
    {
        if (Interlocked.Exchange(ref _jobPageSectionsAdded, 1) == 1) return config;
        JobPageView.UseJobPages(config);
        JobProgress.UseProgressBars(config);
        return ScanReportView.UseScanReports(config);
    }

    /// <summary>The job storage every host and client uses (workers, web host, `rscapret enqueue`).</summary>
    public static PostgreSqlStorage CreateStorage(string connectionString)
    {
        var options = StorageOptions();
        return new(new Hangfire.PostgreSql.Factories.NpgsqlConnectionFactory(connectionString, options), options);
    }

    /// <summary>
    /// A live worker keeps refreshing the jobs it holds (sliding invisibility), so a job whose worker died (killed,
    /// machine lost) goes back to its queue after <c>RSCAPRET_JOB_INVISIBILITY_SECONDS</c> (default 300) instead of
    /// Hangfire's 30 minutes, however long healthy jobs run.
    /// </summary>
    private static PostgreSqlStorageOptions StorageOptions() => new()
    {
        SchemaName = Schema, PrepareSchemaIfNecessary = true, QueuePollInterval = TimeSpan.FromSeconds(2),
        UseSlidingInvisibilityTimeout = true,
        InvisibilityTimeout = TimeSpan.FromSeconds(Core.Configuration.EnvironmentSettings.Load<JobsOptions>().InvisibilitySeconds),
    };
}

/// <summary>
/// Retry as a filter: transient failures (database or network hiccups, I/O timeouts) are retried with back-off;
/// bad input (corrupt raster, unknown CRS, bad checkpoint) fails at once with its message — retrying cannot fix it.
/// </summary>
public static class TransientRetry
{
    public static readonly Type[] TransientExceptionTypes =
        [typeof(NpgsqlException), typeof(TimeoutException), typeof(HttpRequestException), typeof(TransientJobException)];

    public static AutomaticRetryAttribute Filter() => new()
    {
        Attempts = 5,
        DelaysInSeconds = [10, 60, 300, 900, 3600],
        OnlyOn = TransientExceptionTypes,
        OnAttemptsExceeded = AttemptsExceededAction.Fail,
    };
}

/// <summary>A failure a later attempt may not meet (e.g. an archive share that was briefly unreachable).</summary>
public sealed class TransientJobException(string message, Exception? inner = null) : Exception(message, inner);
