using System.Net;
using System.Net.Sockets;

namespace RsCapRet.TestSupport;

/// <summary>Ports for test hosts on loopback.</summary>
public static class LoopbackPorts
{
    /// <summary>A port the OS just handed out on 127.0.0.1 (free now; a test host binds it next).</summary>
    public static int Free()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try { return ((IPEndPoint)listener.LocalEndpoint).Port; }
        finally { listener.Stop(); }
    }
}
