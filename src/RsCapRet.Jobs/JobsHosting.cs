using Hangfire;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using RsCapRet.Storage;

namespace RsCapRet.Jobs;

/// <summary>Service registration shared by the worker and the web host.</summary>
public static class JobsHosting
{
    /// <summary>Hangfire client/storage, the catalogue data source and the job classes' dependencies.</summary>
    public static IServiceCollection AddRsCapRetJobs(this IServiceCollection services, string connectionString)
    {
        services.AddSingleton<NpgsqlDataSource>(_ => RsCapRetDatabase.CreateDataSource(connectionString));
        services.AddSingleton<ModelCache>();
        services.AddTransient<IngestSceneJob>();
        services.AddTransient<IndexArchiveJob>();
        services.AddTransient<TrainJob>();
        services.AddTransient<EvaluateJob>();
        services.AddHangfire((provider, cfg) => cfg
            .UseRsCapRetStorage(connectionString)
            .UseLogProvider(new HostLogProvider(provider.GetRequiredService<ILoggerFactory>())));
        return services;
    }

    /// <summary>A Hangfire server on <paramref name="queues"/> (e.g. only "model" on GPU machines).</summary>
    public static IServiceCollection AddRsCapRetWorker(this IServiceCollection services, IReadOnlyList<string> queues, int workers, string? name = null)
    {
        foreach (var q in queues)
            if (!JobQueues.All.Contains(q)) throw new ArgumentException($"Unknown queue '{q}' (known: {string.Join(", ", JobQueues.All)}).");
        services.AddHangfireServer(o =>
        {
            o.Queues = queues.ToArray();
            o.WorkerCount = workers;
            o.ServerName = name ?? $"{Environment.MachineName}:{Environment.ProcessId}";
            o.SchedulePollingInterval = TimeSpan.FromSeconds(5);
        });
        return services;
    }
}
