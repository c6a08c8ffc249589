import WeChatPay
print("ok")
