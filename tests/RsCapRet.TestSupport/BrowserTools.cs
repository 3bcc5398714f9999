using Xunit;

namespace RsCapRet.TestSupport;

/// <summary>The tools the browser tests (tests/web/*.mjs) run with, checked before a test starts one.</summary>
public static class BrowserTools
{
    /// <summary>Fails (never skips) with what to install when node, Debian's chromium or tests/web's modules are missing.</summary>
    public static async Task AssertInstalledAsync(string root)
    {
        var missing = new List<string>();
        try
        {
            var (code, _, _) = await TestProcess.RunAsync("node", ["--version"], root, TimeSpan.FromSeconds(30));
            if (code != 0) missing.Add("node (apt-get install nodejs npm)");
        }
        catch (System.ComponentModel.Win32Exception) { missing.Add("node (apt-get install nodejs npm)"); }
        var chromium = Environment.GetEnvironmentVariable("CHROMIUM_PATH") is { Length: > 0 } c ? c : "/usr/bin/chromium";
        if (!File.Exists(chromium)) missing.Add($"{chromium} (apt-get install chromium, or set CHROMIUM_PATH)");
        if (!Directory.Exists(Path.Combine(root, "tests", "web", "node_modules", "playwright-core")))
            missing.Add("tests/web/node_modules/playwright-core (npm ci --prefix tests/web)");
        Assert.True(missing.Count == 0,
            "The map page test drives headless Chromium and needs: " + string.Join("; ", missing) +
            ". scripts/bootstrap.sh installs all of them.");
    }
}
