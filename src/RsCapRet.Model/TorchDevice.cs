using TorchSharp;

namespace RsCapRet.Model;

/// <summary>Chooses the torch device at run time: "auto" takes CUDA when the build and machine have it.</summary>
public static class TorchDevice
{
    public static torch.Device Resolve(string? name = "auto")
    {
        name = string.IsNullOrWhiteSpace(name) ? "auto" : name.Trim().ToLowerInvariant();
        if (name == "auto") return torch.cuda.is_available() ? torch.CUDA : torch.CPU;
        if (name.StartsWith("cuda", StringComparison.Ordinal) && !torch.cuda.is_available())
            throw new InvalidOperationException(
                $"Device '{name}' requested, but CUDA is not available: this build uses the " +
                "CPU libtorch (build with -p:RsCapRetTorchBackend=cuda on a machine with an NVIDIA GPU).");
        return new torch.Device(name);
    }
}
